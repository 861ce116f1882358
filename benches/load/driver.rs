//! The load generator: C tokio tasks sharing one reqwest client (so up to C keep-alive
//! connections), each sending its next request as soon as the previous answer arrived, for a
//! fixed time. Latency is measured per operation (a search + read is one operation of two
//! requests), from sending the request to having read the whole body. Any answer other than the
//! expected status (and, for search, the expected single guest) is an error.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::data::{self, Rng};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Read,
    SearchRead,
    AddStay,
    Erasure,
    /// GET / on the trivial axum server.
    Trivial,
}

impl Op {
    pub fn parse(name: &str) -> Self {
        match name {
            "create" => Self::Create,
            "read" => Self::Read,
            "search_read" => Self::SearchRead,
            "add_stay" => Self::AddStay,
            "erasure" => Self::Erasure,
            _ => Self::Trivial,
        }
    }

    /// HTTP requests per operation.
    pub fn requests(self) -> u64 {
        if self == Self::SearchRead {
            2
        } else {
            1
        }
    }
}

/// Everything the tasks share.
#[derive(Debug)]
pub struct Ctx {
    pub client: reqwest::Client,
    /// The nodes' base URLs; requests go to each in turn (one node: always the same).
    pub bases: Vec<String>,
    pub turn: AtomicUsize,
    pub pms: HeaderValue,
    pub front_desk: HeaderValue,
    pub dsr: HeaderValue,
    pub ids: Arc<Vec<uuid::Uuid>>,
    /// Guest index of the next create (starts at N so mobiles stay unique).
    pub next_create: AtomicU64,
    /// Erasure takes seeded guests from the end, each once.
    pub next_erase: AtomicU64,
}

impl Ctx {
    /// The base URL of the node the next request goes to.
    pub fn base(&self) -> &str {
        if self.bases.len() == 1 {
            return &self.bases[0];
        }
        &self.bases[self.turn.fetch_add(1, Ordering::Relaxed) % self.bases.len()]
    }
}

pub fn client(connections: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

pub fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}")).unwrap()
}

enum Done {
    Ok,
    /// Nothing left to do (erasure ran out of guests).
    Exhausted,
}

pub async fn send(
    ctx: &Ctx,
    method: Method,
    path: &str,
    token: &HeaderValue,
    purpose: &'static str,
    body: Option<&Value>,
) -> Result<(StatusCode, Vec<u8>), String> {
    let mut req = ctx
        .client
        .request(method.clone(), format!("{}{path}", ctx.base()))
        .header(AUTHORIZATION, token.clone())
        .header("x-purpose", purpose);
    if let Some(b) = body {
        req = req
            .header(CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(b).unwrap());
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("{method} {}: {e}", route(path)))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("{method} {}: body: {e}", route(path)))?
        .to_vec();
    Ok((status, bytes))
}

/// The path with ids replaced, for error messages.
fn route(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if uuid::Uuid::try_parse(seg).is_ok() {
                "{id}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

pub fn expect(
    method: &str,
    path: &str,
    want: StatusCode,
    got: (StatusCode, Vec<u8>),
) -> Result<Vec<u8>, String> {
    if got.0 == want {
        return Ok(got.1);
    }
    let code = serde_json::from_slice::<Value>(&got.1)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_string))
        .unwrap_or_default();
    Err(format!("{method} {} → {} {code}", route(path), got.0))
}

fn seeded(ctx: &Ctx, rng: &mut Rng) -> (u64, String) {
    let i = rng.below(ctx.ids.len() as u64);
    (i, ctx.ids[i as usize].hyphenated().to_string())
}

async fn run_op(ctx: &Ctx, op: Op, rng: &mut Rng) -> Result<Done, String> {
    match op {
        Op::Create => {
            let i = ctx.next_create.fetch_add(1, Ordering::Relaxed);
            let body = json!({ "fields": data::guest_fields(i) });
            let path = "/v1/guests";
            let got = send(ctx, Method::POST, path, &ctx.pms, "check_in", Some(&body)).await?;
            expect("POST", path, StatusCode::CREATED, got)?;
        }
        Op::Read => {
            let (_, id) = seeded(ctx, rng);
            let path = format!("/v1/guests/{id}");
            let got = send(ctx, Method::GET, &path, &ctx.front_desk, "check_in", None).await?;
            let body = expect("GET", &path, StatusCode::OK, got)?;
            if !body.windows(id.len()).any(|w| w == id.as_bytes()) {
                return Err("GET /v1/guests/{id} → a body without the guest id".into());
            }
        }
        Op::SearchRead => {
            let (i, id) = seeded(ctx, rng);
            let body =
                json!({ "field": "mobile", "value": data::mobile_spelled(i, rng.next_u64()) });
            let path = "/v1/guests/search";
            let got = send(
                ctx,
                Method::POST,
                path,
                &ctx.front_desk,
                "check_in",
                Some(&body),
            )
            .await?;
            let found = expect("POST", path, StatusCode::OK, got)?;
            let found: Value = serde_json::from_slice(&found).map_err(|e| e.to_string())?;
            if found != json!({ "guest_ids": [id] }) {
                return Err("POST /v1/guests/search → not exactly the seeded guest".into());
            }
            let path = format!("/v1/guests/{id}");
            let got = send(ctx, Method::GET, &path, &ctx.front_desk, "check_in", None).await?;
            expect("GET", &path, StatusCode::OK, got)?;
        }
        Op::AddStay => {
            let (_, id) = seeded(ctx, rng);
            let path = format!("/v1/guests/{id}/stays");
            let body = data::stay_fields(rng);
            let got = send(ctx, Method::POST, &path, &ctx.pms, "check_in", Some(&body)).await?;
            expect("POST", &path, StatusCode::CREATED, got)?;
        }
        Op::Erasure => {
            let k = ctx.next_erase.fetch_add(1, Ordering::Relaxed);
            let Some(i) = (ctx.ids.len() as u64).checked_sub(k + 1) else {
                return Ok(Done::Exhausted);
            };
            let id = ctx.ids[i as usize].hyphenated().to_string();
            let path = format!("/v1/guests/{id}/erasure");
            let body = json!({ "reason": "guest asked for erasure at the front desk (benchmark)" });
            let (status, bytes) = send(
                ctx,
                Method::POST,
                &path,
                &ctx.dsr,
                "data_subject_request",
                Some(&body),
            )
            .await?;
            if !status.is_success() {
                return expect("POST", &path, StatusCode::OK, (status, bytes)).map(|_| Done::Ok);
            }
        }
        Op::Trivial => {
            let resp = ctx
                .client
                .get(format!("{}/", ctx.base()))
                .send()
                .await
                .map_err(|e| format!("GET /: {e}"))?;
            let status = resp.status();
            let body = resp.bytes().await.map_err(|e| format!("GET /: {e}"))?;
            if status != StatusCode::OK || &body[..] != b"ok" {
                return Err(format!("GET / → {status}"));
            }
        }
    }
    Ok(Done::Ok)
}

/// Whether the erasure route exists: `Some(reason)` if it does not yet.
pub async fn erasure_missing(ctx: &Ctx) -> Option<String> {
    let id = ctx.ids.last()?.hyphenated().to_string();
    let path = format!("/v1/guests/{id}/erasure");
    let body = json!({ "reason": "probe" });
    let got = send(
        ctx,
        Method::POST,
        &path,
        &ctx.dsr,
        "data_subject_request",
        Some(&body),
    )
    .await
    .ok()?;
    let code = serde_json::from_slice::<Value>(&got.1)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_string))
        .unwrap_or_default();
    match got.0 {
        StatusCode::METHOD_NOT_ALLOWED => Some("405 method not allowed".into()),
        // The router's fallback answers `not_found`; an unknown guest would be `guest_not_found`.
        StatusCode::NOT_FOUND if code != "guest_not_found" => Some(format!("404 {code}")),
        _ => {
            // The probe erased (or tried to erase) the last guest; the scenario starts before it.
            ctx.next_erase.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub ok: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub elapsed: Duration,
    /// Latencies of successful operations, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    pub exhausted: bool,
}

impl Outcome {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) of latency, in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let n = self.latencies_us.len();
        let idx = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
        f64::from(self.latencies_us[idx]) / 1000.0
    }
}

/// Runs `op` on `connections` tasks until `duration` has passed.
pub async fn drive(ctx: &Arc<Ctx>, op: Op, connections: usize, duration: Duration) -> Outcome {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|t| {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let mut rng =
                    Rng::new(0xC0FFEE ^ ((t as u64) << 32) ^ started.elapsed().as_nanos() as u64);
                let mut out = Outcome::default();
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    match run_op(&ctx, op, &mut rng).await {
                        Ok(Done::Ok) => {
                            out.ok += 1;
                            let us = t0.elapsed().as_micros().min(u128::from(u32::MAX));
                            out.latencies_us.push(us as u32);
                        }
                        Ok(Done::Exhausted) => {
                            out.exhausted = true;
                            break;
                        }
                        Err(e) => {
                            out.errors += 1;
                            if out.error_samples.len() < 3 {
                                out.error_samples.push(e);
                            }
                        }
                    }
                }
                out
            })
        })
        .collect();
    let mut total = Outcome::default();
    for t in tasks {
        let o = t.await.expect("a load task panicked");
        total.ok += o.ok;
        total.errors += o.errors;
        total.exhausted |= o.exhausted;
        total.latencies_us.extend(o.latencies_us);
        for e in o.error_samples {
            if total.error_samples.len() < 5 && !total.error_samples.contains(&e) {
                total.error_samples.push(e);
            }
        }
    }
    total.elapsed = started.elapsed();
    total.latencies_us.sort_unstable();
    total
}
