//! End-to-end HTTP tests: a real server on port 0 with its own temp data dir per test.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly by design")]
mod audit;
mod audit_safety;
mod budgets;
mod canary;
mod cli;
mod consents;
mod console;
mod corrections;
mod edge;
mod erasure;
mod errors;
mod faults;
mod guests;
mod helpers;
mod insider;
mod keys;
mod layout;
mod logs;
mod metrics;
mod nodes;
mod nodes_coordination;
mod openapi;
mod pg_erasure;
mod startup;
mod stays;
mod tls;
