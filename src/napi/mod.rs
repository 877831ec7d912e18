//! The JavaScript layer (napi-rs). Thin: it converts options and results, runs core work off the
//! JS thread, and maps errors. The only module that imports napi.

mod chat;
mod errors;
mod generate;
mod job;
mod meta;
mod model;
mod options;
mod session;
mod types;
mod writer;
