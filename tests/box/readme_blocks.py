#!/usr/bin/env python3
"""Prints the shell blocks of README.md's "## Install on a bastion" section
that an administrator runs on the bastion, for one scenario, NUL-separated.

Fences: ```sh blocks run; ```sh TAG ... blocks run only in a scenario named
by one of the TAGs (e.g. ```sh timers, ```sh vigild); every other fence
(```console for the build host, ```toml, ...) is text, not run. With --list,
prints one line per block instead: run|skip, the info string, the first line."""
import re
import sys

args = sys.argv[1:]
listing = "--list" in args
args = [a for a in args if a != "--list"]
readme, scenario = args
text = open(readme, encoding="utf-8").read()
m = re.search(r"^## Install on a bastion\n(.*?)(?=^## )", text, re.S | re.M)
if not m:
    sys.exit("readme_blocks: no '## Install on a bastion' section in " + readme)
blocks = []
for fm in re.finditer(r"^( *)```([^\n]*)\n(.*?)^\1```[ \t]*$", m.group(1), re.S | re.M):
    indent, info, body = fm.group(1), fm.group(2).split(), fm.group(3)
    body = "".join(line[len(indent):] if line.startswith(indent) else line
                   for line in body.splitlines(True))
    lang, tags = (info[0] if info else ""), info[1:]
    run = lang == "sh" and (not tags or scenario in tags)
    blocks.append((run, " ".join(info), body))
if not any(r for r, _, _ in blocks):
    sys.exit("readme_blocks: no ```sh block in the install section")
for run, info, body in blocks:
    if listing:
        first = body.strip().splitlines()[0] if body.strip() else ""
        print(("run " if run else "skip"), f"```{info}", first)
    elif run:
        sys.stdout.write(body + "\0")
