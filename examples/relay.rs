//! The reference for delivery throughput: a lossless relay that answers every
//! request with a 302 and sends one signed `link.clicked` POST per click to a
//! receiver, storing nothing. Clicks wait in a bounded queue (a full queue
//! holds the redirect back instead of dropping the click), and a fixed number
//! of senders keep at most `IN_FLIGHT` requests open, as relurl's endpoint
//! actor does. `load-tests/run` measures relurl against it in the same run.
//!
//!   cargo run --release --example relay -- 127.0.0.1:8091 http://127.0.0.1:9999/hook [IN_FLIGHT]

use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use chrono::Utc;
use http_body_util::{Empty, Full};
use hyper::{Request, Response, StatusCode, header};
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use relurl::{
    domain::{Delivery, DeliveryStatus},
    webhooks::signer,
};
use tokio::sync::{Mutex, mpsc};
use uuid::Uuid;

const QUEUE: usize = 65_536;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8091".into());
    let target: hyper::Uri = args
        .next()
        .and_then(|u| u.parse().ok())
        .expect("usage: relay LISTEN TARGET_URL [IN_FLIGHT]");
    let in_flight: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(64);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("relay on {addr} → {target}, {in_flight} in flight");

    let (clicks, queue) = mpsc::channel::<Delivery>(QUEUE);
    let queue = Arc::new(Mutex::new(queue));
    let secrets = [signer::new_secret()];
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    for _ in 0..in_flight {
        let (queue, client, target, secrets) = (
            queue.clone(),
            client.clone(),
            target.clone(),
            secrets.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Some(delivery) = queue.lock().await.recv().await else {
                    return;
                };
                let mut request = Request::post(target.clone())
                    .body(Full::new(Bytes::from(delivery.body.clone())))
                    .expect("a POST to a parsed URI");
                *request.headers_mut() = signer::headers(&delivery, 1, &secrets, Utc::now());
                // Lossless: a failed send is tried again.
                while client.request(request_clone(&request)).await.is_err() {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        });
    }

    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let clicks = clicks.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<_>| {
                let clicks = clicks.clone();
                async move {
                    let delivery = click_delivery(request.uri().path());
                    let _ = clicks.send(delivery).await;
                    let mut response = Response::new(Empty::<Bytes>::new());
                    *response.status_mut() = StatusCode::FOUND;
                    response.headers_mut().insert(
                        header::LOCATION,
                        header::HeaderValue::from_static("https://example.com/landing"),
                    );
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A `link.clicked` of the same shape and size relurl sends.
fn click_delivery(path: &str) -> Delivery {
    let now = Utc::now();
    let event_id = Uuid::now_v7();
    let code = path.trim_start_matches('/');
    let body = serde_json::json!({
        "event_id": event_id,
        "type": "link.clicked",
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "data": {
            "id": Uuid::now_v7(),
            "code": code,
            "at": now,
            "ip": "127.0.0.1",
            "user_agent": "wrk",
            "referrer": "",
            "referrer_host": null,
            "location": {},
            "device": "bot",
            "browser": "Other",
            "os": "Other",
            "is_bot": true,
        },
    })
    .to_string();
    Delivery {
        endpoint_id: Uuid::nil(),
        event_id,
        event_type: "link.clicked".into(),
        body,
        created_at: now,
        attempts: 0,
        first_attempt_at: None,
        next_attempt_at: now,
        status: DeliveryStatus::Pending,
    }
}

fn request_clone(request: &Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    let mut copy = Request::post(request.uri().clone())
        .body(request.body().clone())
        .expect("a copy of a valid request");
    *copy.headers_mut() = request.headers().clone();
    copy
}
