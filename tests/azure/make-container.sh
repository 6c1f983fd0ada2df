#!/usr/bin/env bash
# Creates a container in Azurite (start-azurite.sh) with an account SAS for
# the well-known dev account, signed here with openssl: vigil (object_store)
# never creates containers, as in production.
#
# Usage: make-container.sh PORT NAME
set -euo pipefail
PORT=$1; NAME=$2
ACCOUNT=devstoreaccount1
KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
SV=2021-08-06; SE=2030-01-01T00:00:00Z
HEXKEY=$(printf %s "$KEY" | base64 -d | od -An -tx1 | tr -d ' \n')
# The string to sign ends with the empty encryption scope and a newline: it
# is piped, since $(...) would drop the trailing newlines.
SIG=$(printf '%s\n' "$ACCOUNT" rwdlacup b sco '' "$SE" '' https,http "$SV" '' |
  openssl dgst -sha256 -mac HMAC -macopt "hexkey:$HEXKEY" -binary | base64 -w0)
SIG=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$SIG")
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Length: 0' \
  "http://127.0.0.1:$PORT/$ACCOUNT/$NAME?restype=container&sv=$SV&ss=b&srt=sco&sp=rwdlacup&se=$SE&spr=https,http&sig=$SIG")
case "$code" in
  201 | 409) ;;
  *) echo "make-container.sh: creating container $NAME answered HTTP $code" >&2; exit 1 ;;
esac
