//! The CLI with stores: `revoke`, `revocation-ids`, `verify --store` (revocation, single-use tokens, retries,
//! the audit log) and `audit verify` catching an edited, deleted or swapped entry — on SQLite and on Redis (a
//! redis-server started here on a free loopback port; the test fails if it cannot be started).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::{Child, Command, Output, Stdio};

const NOW: &str = "1800000000";

struct Cli {
    home: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        let cli = Cli {
            home: tempfile::tempdir().unwrap(),
        };
        cli.ok(&["keygen"]);
        cli
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_at(NOW, args)
    }

    fn run_at(&self, now: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_mcpvault"))
            .args(args)
            .env("HOME", self.home.path())
            .env("MCPVAULT_NOW", now)
            .output()
            .unwrap()
    }

    /// `args` with `input` on standard input (`mcpvault guard`'s JSON lines).
    fn run_with_input(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcpvault"))
            .args(args)
            .env("HOME", self.home.path())
            .env("MCPVAULT_NOW", NOW)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// The code of a refusal (exit 1), from `mcpvault: CODE: message`.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        err.trim_start_matches("mcpvault: ")
            .split(':')
            .next()
            .unwrap()
            .to_string()
    }

    fn pubkey(&self) -> String {
        let path = self.home.path().join(".mcpvault/keys/default.json");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        v["public_key"].as_str().unwrap().to_string()
    }

    fn mint(&self, extra: &[&str]) -> String {
        let mut args = vec![
            "mint",
            "--tools",
            "db_query,file_read",
            "--ttl",
            "3600",
            "--issuer",
            "auth-server",
            "--subject",
            "agent-a",
        ];
        args.extend_from_slice(extra);
        self.ok(&args)
    }
}

struct Redis(Child, String);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Redis {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (apt install redis-server)");
    // From here the guard kills and waits for the server, whatever happens.
    let redis = Redis(child, format!("redis://127.0.0.1:{port}"));
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return redis;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("redis-server did not start on {port}");
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn scenario(store: &str) {
    let cli = Cli::new();
    let pk = cli.pubkey();
    let root = cli.mint(&[]);
    let hop = cli.ok(&["attenuate", "--token", &root, "--tools", "db_query"]);
    let verify = |token: &str, extra: &[&str]| -> Vec<String> {
        let mut v = vec![
            "verify".to_string(),
            "--token".into(),
            token.to_string(),
            "--pubkey".into(),
            pk.clone(),
            "--tool".into(),
            "db_query".into(),
            "--store".into(),
            store.to_string(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };

    // revocation-ids, then revoking the root refuses the derived token
    let ids = cli.ok(&["revocation-ids", "--token", &hop]);
    let ids: Vec<&str> = ids.lines().collect();
    assert_eq!(ids.len(), 2);
    cli.ok(&args(&verify(&hop, &[])));
    assert_eq!(
        cli.ok(&["revoke", "--id", ids[0], "--store", store]),
        format!("revoked {}", ids[0])
    );
    assert_eq!(cli.refused(&args(&verify(&hop, &[]))), "revoked");
    assert_eq!(cli.refused(&args(&verify(&root, &[]))), "revoked");
    assert_eq!(
        cli.run(&["revoke", "--id", "not-hex", "--store", store])
            .status
            .code(),
        Some(2)
    );

    // only a whole revocation id: a prefix would revoke nothing
    let prefix = &ids[1][..16];
    assert_eq!(
        cli.run(&["revoke", "--id", prefix, "--store", store])
            .status
            .code(),
        Some(2)
    );

    // a single-use token: once; the same request again is not run twice (the CLI records no result: in_flight);
    // another request is replayed
    let once = cli.mint(&["--single-use"]);
    cli.ok(&args(&verify(&once, &["--request-id", "1"])));
    assert_eq!(
        cli.refused(&args(&verify(&once, &["--request-id", "1"]))),
        "in_flight"
    );
    assert_eq!(
        cli.refused(&args(&verify(&once, &["--request-id", "2"]))),
        "replayed"
    );
    // a call another server ran and recorded (the guard's `complete`): its retry through `verify` is refused, never
    // allowed to run again (helper 40: verify printed the facts, and its caller ran the call a second time)
    let twice = cli.mint(&["--single-use"]);
    let options = serde_json::json!({"public_key": pk, "store": true}).to_string();
    let body = serde_json::json!({"jsonrpc": "2.0", "id": "5", "method": "tools/call",
        "params": {"name": "db_query", "arguments": {}}});
    let line = serde_json::json!({"now": NOW.parse::<u64>().unwrap(),
        "input": {"fallback_token": twice, "body": body.to_string()},
        "complete": {"result": {"content": []}}});
    let ran = cli.run_with_input(
        &["guard", "--options", &options, "--store", store],
        &format!("{line}\n"),
    );
    let ran: serde_json::Value = serde_json::from_slice(&ran.stdout).unwrap();
    assert_eq!(ran["allowed"], true);
    for id in ["5", "5"] {
        assert_eq!(
            cli.refused(&args(&verify(&twice, &["--request-id", id]))),
            "replayed"
        );
    }
    // without a store a single-use token is refused
    assert_eq!(
        cli.refused(&["verify", "--token", &once, "--pubkey", &pk, "--tool", "db_query"]),
        "replayed"
    );

    // every decision with --store is in the audit log (9: the one without a store is not), and it verifies
    let ok = cli.ok(&["audit", "verify", "--store", store]);
    assert!(ok.starts_with("ok: 9 entries, head "), "{ok}");
    let export = cli.ok(&["audit", "export", "--store", store]);
    let lines: Vec<&str> = export.lines().collect();
    assert_eq!(lines.len(), 9);
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, lines: Vec<String>| -> String {
        let f = dir.path().join(name);
        std::fs::write(&f, lines.join("\n")).unwrap();
        let out = cli.run(&["audit", "verify", f.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        format!("{} {}", out.status.code().unwrap(), text.trim())
    };
    let original: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    assert!(check("ok.jsonl", original.clone()).starts_with("0 ok: 9 entries"));
    let mut edited = original.clone();
    edited[1] = edited[1].replace("\"allowed\":false", "\"allowed\":true");
    assert_ne!(edited[1], original[1]);
    assert!(
        check("edited.jsonl", edited).contains("audit: entry 1 (line 2, seq 2) edited"),
        "edit"
    );
    let mut deleted = original.clone();
    deleted.remove(2);
    assert!(
        check("deleted.jsonl", deleted).contains("entry 2 (line 3, seq 4) deleted"),
        "delete"
    );
    let mut swapped = original.clone();
    swapped.swap(4, 5);
    assert!(
        check("swapped.jsonl", swapped).contains("entry 4 (line 5, seq 6) reordered"),
        "swap"
    );
}

/// Every `tests/vectors/state` case through `mcpvault guard` on a fresh store from `fresh()`: the same outcomes,
/// step by step, as the core on its memory store; and the audit chain holds as many entries.
fn state_vectors(fresh: &mut dyn FnMut(&str) -> String) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/state");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let cli = Cli::new();
    let (mut passed, mut failed) = (0, 0);
    for path in names {
        let case: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = case["name"].as_str().unwrap();
        let store = fresh(name);
        for id in case["revoked"].as_array().unwrap() {
            cli.ok(&["revoke", "--id", id.as_str().unwrap(), "--store", &store]);
        }
        let mut input = String::new();
        for step in case["steps"].as_array().unwrap() {
            let mut line = serde_json::json!({"now": step["now"], "input": step["input"]});
            if let Some(c) = step.get("complete") {
                line["complete"] = c.clone();
            }
            input.push_str(&format!("{line}\n"));
        }
        // a case without a store runs without one
        let options = case["options"].to_string();
        let mut args = vec!["guard", "--options", &options];
        if case["options"]["store"].as_bool().unwrap() {
            args.extend(["--store", &store]);
        }
        let out = cli.run_with_input(&args, &input);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Vec<serde_json::Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                // `cache_hit` depends on the guard's cache (16 here): the vectors never hold it
                let mut o: serde_json::Value = serde_json::from_str(l).unwrap();
                for d in o["decisions"].as_array_mut().unwrap() {
                    d.as_object_mut().unwrap().remove("cache_hit");
                }
                o
            })
            .collect();
        let want: Vec<serde_json::Value> = case["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["expect"].clone())
            .collect();
        let audit = cli.ok(&["audit", "export", "--store", &store]);
        let entries = audit.lines().filter(|l| !l.trim().is_empty()).count() as u64;
        if got == want && entries == case["audit_entries"].as_u64().unwrap() {
            passed += 1;
        } else {
            failed += 1;
            eprintln!("FAIL {name} ({entries} audit entries)");
            for (g, w) in got.iter().zip(&want) {
                if g != w {
                    eprintln!("  expected {w}\n  got      {g}");
                }
            }
        }
    }
    println!("state vectors through the CLI: {passed} passed, {failed} failed");
    assert!(passed >= 40);
    assert_eq!(failed, 0);
}

#[test]
fn sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&format!(
        "sqlite:{}",
        dir.path().join("vault.db").to_str().unwrap()
    ));
    let files = tempfile::tempdir().unwrap();
    state_vectors(&mut |name| {
        format!(
            "sqlite:{}",
            files.path().join(format!("{name}.db")).display()
        )
    });
}

/// Redis expires spent nonces on its own clock, by how long the token has left: a guard whose clock is years behind
/// Redis's (here 2001) must not see its spends vanish (with absolute expiry times they were dropped at once).
fn spends_survive_clock_skew(store: &str) {
    let cli = Cli::new();
    let pk = cli.pubkey();
    let then = "1000000000";
    let out = cli.run_at(
        then,
        &[
            "mint",
            "--tools",
            "db_query",
            "--ttl",
            "3600",
            "--issuer",
            "i",
            "--subject",
            "s",
            "--single-use",
        ],
    );
    let once = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let verify = |id: &str| {
        let out = cli.run_at(
            then,
            &[
                "verify",
                "--token",
                &once,
                "--pubkey",
                &pk,
                "--tool",
                "db_query",
                "--store",
                store,
                "--request-id",
                id,
            ],
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    assert_eq!(verify("1").0, Some(0));
    let (code, err) = verify("2");
    assert_eq!(code, Some(1));
    assert!(err.contains("replayed"), "{err}");
}

/// audit.lua: an audit append Redis refuses (the list key holds another type) refuses the call and writes nothing —
/// the head stays the last entry the list took (EXEC used to move it anyway).
fn audit_append_refused_writes_nothing(url: &str) {
    let cli = Cli::new();
    let pk = cli.pubkey();
    let token = cli.mint(&[]);
    let verify = || {
        cli.run(&[
            "verify", "--token", &token, "--pubkey", &pk, "--tool", "db_query", "--store", url,
        ])
        .status
        .code()
    };
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    redis::cmd("FLUSHDB").query::<()>(&mut c).unwrap();
    assert_eq!(verify(), Some(0));
    let head: String = redis::cmd("GET")
        .arg("mcpvault:audit:head")
        .query(&mut c)
        .unwrap();
    redis::cmd("DEL")
        .arg("mcpvault:audit")
        .query::<()>(&mut c)
        .unwrap();
    redis::cmd("SET")
        .arg("mcpvault:audit")
        .arg("not a list")
        .query::<()>(&mut c)
        .unwrap();
    assert_eq!(verify(), Some(1));
    let after: String = redis::cmd("GET")
        .arg("mcpvault:audit:head")
        .query(&mut c)
        .unwrap();
    assert_eq!(after, head);
}

#[test]
fn redis_store() {
    let redis = start_redis();
    scenario(&redis.1);
    spends_survive_clock_skew(&redis.1);
    audit_append_refused_writes_nothing(&redis.1);
    let url = redis.1.clone();
    state_vectors(&mut |_| {
        let mut c = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("FLUSHDB").query::<()>(&mut c).unwrap();
        url.clone()
    });
}

/// `verify --store S --decision-log FILE` appends the guard's decision record, one JSON line per decision: allowed,
/// then refused with its code; the token and the call's argument values appear nowhere in the file.
#[test]
fn decision_log() {
    let cli = Cli::new();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("vault.db").display());
    let log = dir.path().join("decisions.jsonl");
    let log_arg = log.to_str().unwrap();
    let pk = cli.pubkey();
    let token = cli.mint(&["--arg", "db_query.max_rows<=100"]);
    let run = |args_json: &str, id: &str| {
        cli.run(&[
            "verify",
            "--token",
            &token,
            "--pubkey",
            &pk,
            "--tool",
            "db_query",
            "--args",
            args_json,
            "--store",
            &store,
            "--request-id",
            id,
            "--decision-log",
            log_arg,
        ])
    };
    assert_eq!(
        run(r#"{"max_rows": 7, "q": "secret-argument-value"}"#, "1")
            .status
            .code(),
        Some(0)
    );
    assert_eq!(run(r#"{"max_rows": 4242}"#, "2").status.code(), Some(1));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["allowed"], true);
    assert_eq!(lines[0]["tool"], "db_query");
    assert_eq!(lines[0]["request_id"], "1");
    assert_eq!(lines[0]["subject"], "agent-a");
    assert_eq!(lines[0]["depth"], 0);
    assert_eq!(lines[0]["token_source"], "fallback");
    assert_eq!(lines[1]["allowed"], false);
    assert_eq!(lines[1]["code"], "argument_not_allowed");
    assert_eq!(lines[1]["status"], 403);
    assert!(!text.contains(&token) && !text.contains(&token[..40]));
    assert!(!text.contains("secret-argument-value") && !text.contains("4242"));
    // the audit log got the same two decisions
    let audit = cli.ok(&["audit", "export", "--store", &store]);
    assert_eq!(audit.lines().count(), 2);
}
