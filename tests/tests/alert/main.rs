//! The alerting suite: vigil-notify and the channels against real receivers
//! on loopback (Slack and Teams webhooks, an SMTP relay, Alertmanager), a
//! crash with a full outbox, and an alert database scrubbed of a leaked
//! token. The shared receivers are `vigil_tests::notify`.

mod alertmanager;
mod crash;
mod email;
mod http_channels;
mod scrub;
