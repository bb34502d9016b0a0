//! `/v1/keys`: an account's API keys listed, created (shown once), revoked
//! (at once, never the last one), with `last_used_at`; keys stored before key
//! records keep working and get listed; `relurl admin-token reset`.

mod common;

use common::{TestServer, eventually, process};
use http::StatusCode;
use serde_json::{Value, json};

async fn keys(server: &TestServer, key: &str) -> Vec<Value> {
    let reply = server.get("/v1/keys", Some(key)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn keys_are_created_listed_and_revoked() {
    let server = TestServer::start("").await;
    let first = server.account("acme").await;
    let listed = keys(&server, &first).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["prefix"], json!(first[..11]));
    assert!(
        listed[0].get("key").is_none(),
        "the key itself is never listed"
    );

    let reply = server
        .post("/v1/keys", Some(&first), json!({"name": "ci"}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let second = reply.body["key"].as_str().unwrap().to_string();
    let second_id = reply.body["id"].as_str().unwrap().to_string();
    assert!(second.starts_with("rl_") && second.len() == 35);
    assert_eq!(reply.body["name"], "ci");
    assert_eq!(reply.body["prefix"], json!(second[..11]));
    assert_eq!(reply.body["last_used_at"], Value::Null);

    // The new key works; listed newest first.
    let listed = keys(&server, &second).await;
    let ids: Vec<&str> = listed.iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], second_id);
    let page = server.get("/v1/keys?limit=1", Some(&first)).await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 1);
    assert!(page.body["next_cursor"].is_string());

    // last_used_at shows up once the key has been used.
    eventually(|| async {
        let listed = keys(&server, &first).await;
        listed
            .iter()
            .find(|k| k["id"] == json!(second_id))
            .and_then(|k| k["last_used_at"].as_str().map(str::to_string))
    })
    .await;

    // Another account cannot see or revoke these.
    let stranger = server.account("other").await;
    assert_eq!(keys(&server, &stranger).await.len(), 1);
    let reply = server
        .delete(&format!("/v1/keys/{second_id}"), Some(&stranger))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        server
            .delete("/v1/keys/not-a-uuid", Some(&first))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Revoked: refused at once.
    let reply = server
        .delete(&format!("/v1/keys/{second_id}"), Some(&first))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = server.get("/v1/links", Some(&second)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));

    // The last key stays.
    let last_id = keys(&server, &first).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reply = server
        .delete(&format!("/v1/keys/{last_id}"), Some(&first))
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("last API key")
    );
    assert_eq!(
        server.get("/v1/links", Some(&first)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn key_names_are_validated() {
    let server = TestServer::start("").await;
    let key = server.account("acme").await;
    for body in [
        json!({"name": ""}),
        json!({"name": "a\u{0}b"}),
        json!({"other": 1}),
    ] {
        let reply = server.post("/v1/keys", Some(&key), body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{:?}",
            reply.body
        );
    }
    let reply = server.post("/v1/keys", Some(&key), json!({})).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body["name"], Value::Null);
}

#[tokio::test]
async fn a_key_stored_before_key_records_keeps_working_and_is_listed() {
    use sha2::Digest;
    let tmp = tempfile::tempdir().unwrap();
    let account = uuid::Uuid::now_v7();
    let old_key = "rl_0123456789abcdefghijklmnopqrstuv";
    {
        // The layout before key records: digest → account id, nothing else.
        let db = fjall::Database::builder(tmp.path()).open().unwrap();
        let ks = |name: &str| {
            db.keyspace(name, fjall::KeyspaceCreateOptions::default)
                .unwrap()
        };
        let account_json =
            json!({"id": account, "name": "old", "created_at": "2026-01-02T03:04:05Z"});
        ks("accounts")
            .insert(account.as_bytes(), account_json.to_string())
            .unwrap();
        let digest: [u8; 32] = sha2::Sha256::digest(old_key.as_bytes()).into();
        ks("api_keys").insert(digest, account.as_bytes()).unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let server = TestServer::start_in(tmp.path().to_path_buf(), "").await;
    let listed = keys(&server, old_key).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["prefix"], Value::Null, "only the digest was kept");
    assert_eq!(listed[0]["created_at"], "2026-01-02T03:04:05.000Z");
    // It revokes like any other once there is a second key.
    let reply = server.post("/v1/keys", Some(old_key), json!({})).await;
    let new_key = reply.body["key"].as_str().unwrap().to_string();
    let old_id = listed[0]["id"].as_str().unwrap();
    let reply = server
        .delete(&format!("/v1/keys/{old_id}"), Some(&new_key))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        server.get("/v1/links", Some(old_key)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

fn relurl(args: &[&str], config: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_relurl"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run relurl")
}

fn stop(mut child: std::process::Child) {
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(child.wait().unwrap().success(), "graceful exit");
}

#[tokio::test]
async fn admin_token_reset_on_a_stopped_server_gives_a_working_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relurl.toml");
    let store = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\n",
            store.display()
        ),
    )
    .unwrap();
    // First start generates a token (printed once; this operator lost it).
    let (child, _) = process::serve(&config);
    let running = relurl(&["admin-token", "reset"], &config);
    assert!(
        !running.status.success(),
        "reset while the server holds the store"
    );
    let stderr = String::from_utf8_lossy(&running.stderr);
    assert!(stderr.contains("stop the server"), "{stderr}");
    stop(child);

    let reset = relurl(&["admin-token", "reset"], &config);
    let stdout = String::from_utf8_lossy(&reset.stdout);
    assert!(
        reset.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&reset.stderr)
    );
    let token = stdout
        .split_whitespace()
        .find(|w| w.starts_with("rladm_"))
        .unwrap_or_else(|| panic!("no token in {stdout}"))
        .to_string();
    assert_eq!(stdout.matches(&token).count(), 1, "printed once");

    let (child, addr) = process::serve(&config);
    let server = TestServer::attach(addr);
    let reply = server
        .post("/v1/accounts", Some(&token), json!({"name": "after reset"}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let reply = server
        .post(
            "/v1/accounts",
            Some("rladm_not-the-token"),
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    stop(child);
}

#[test]
fn admin_token_configured_is_long_enough_and_not_reset_behind_its_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relurl.toml");
    std::fs::write(&config, "[auth]\nadmin_token = \"short-token\"\n").unwrap();
    let out = relurl(&["check-config"], &config);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("auth.admin_token") && stderr.contains("24"),
        "{stderr}"
    );

    std::fs::write(
        &config,
        format!(
            "[auth]\nadmin_token = \"a-configured-token-of-length-32\"\n[store]\npath = \"{}\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let out = relurl(&["admin-token", "reset"], &config);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("auth.admin_token is set"), "{stderr}");
}

#[tokio::test]
async fn a_key_stored_before_key_records_keeps_working_on_scylla() {
    use sha2::Digest;
    let Some(node) = common::cql::node() else {
        return;
    };
    let (toml, keyspace) = common::cql::backend_config(&node);
    let server = TestServer::start(&toml).await;
    // The rows as they were written before key records.
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_node(&node)
        .build()
        .await
        .unwrap();
    let account = uuid::Uuid::now_v7();
    let old_key = "rl_0123456789abcdefghijklmnopqrstuv";
    let digest: [u8; 32] = sha2::Sha256::digest(old_key.as_bytes()).into();
    let json = json!({"id": account, "name": "old", "created_at": "2026-01-02T03:04:05Z"});
    session
        .query_unpaged(
            format!("INSERT INTO {keyspace}.accounts (id, json) VALUES (?, ?)"),
            (account, json.to_string()),
        )
        .await
        .unwrap();
    session
        .query_unpaged(
            format!("INSERT INTO {keyspace}.api_keys (key_hash, account_id) VALUES (?, ?)"),
            (digest.to_vec(), account),
        )
        .await
        .unwrap();

    let listed = keys(&server, old_key).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["prefix"], Value::Null);
    assert_eq!(listed[0]["created_at"], "2026-01-02T03:04:05.000Z");
    // Presented again (now from its record), it is the same key.
    assert_eq!(keys(&server, old_key).await[0]["id"], listed[0]["id"]);
}

#[tokio::test]
async fn an_account_holds_at_most_a_hundred_keys() {
    let server = TestServer::start("[auth]\nexpensive_writes_burst = 200\n").await;
    let key = server.account("hoarder").await;
    for _ in 1..100 {
        let reply = server.post("/v1/keys", Some(&key), json!({})).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    }
    let reply = server.post("/v1/keys", Some(&key), json!({})).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 100")
    );
}
