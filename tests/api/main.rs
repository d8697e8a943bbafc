//! Integration tests: the real app on a free port, real Redis, real SQLite,
//! real ffmpeg and espeak-ng. One binary, modules by behaviour.

mod ai_clips;
mod auth;
mod bad_input;
mod batches;
mod bounded_cost;
mod browser;
mod captions;
mod cli;
mod concurrent_submissions;
mod delivery;
mod emulators;
mod events;
mod faults;
mod garage;
mod hostile_input;
mod motion;
mod notify;
mod own_media;
mod performance;
mod privacy;
mod providers;
mod render_flow;
mod retention;
mod review;
mod s3;
mod scale_out;
mod scripts;
mod studio;
mod support;
mod tiktok;
mod tiktok_creator;
mod tiktok_emulator;
mod tiktok_upload;
mod voices;
mod worker_crash;
