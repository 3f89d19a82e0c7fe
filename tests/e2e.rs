//! The end-to-end suites, one test binary (`cargo test -p costream-cli --test e2e`): the real
//! `costream` binary on port 0 driven by real clients. One binary rather than one per suite,
//! because each test binary links the whole server and model stack again.
//!
//! - [`stream`]: streams equal the network run in-process, many at once, across a disconnect;
//! - [`audio`]: voice activity on real recordings equals silero-vad's own model;
//! - [`transformer`]: feature streams to CoOadTR equal the network run in-process;
//! - [`bad_input`]: every malformed or misplaced message gets its documented error;
//! - [`operations`]: the HTTP API, limits, drain and restart, API keys, and (with
//!   `--ignored postgres`) two servers sharing PostgreSQL;
//! - [`accuracy`]: the built-in model labels held-out synthetic clips;
//! - [`client`]: `costream stream` against the server for every input kind;
//! - [`browser`]: the live page in headless Chromium (`--ignored browser::`).

mod accuracy;
mod audio;
mod bad_input;
mod browser;
mod client;
mod common;
mod operations;
mod stream;
mod transformer;
