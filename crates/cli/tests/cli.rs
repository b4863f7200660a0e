//! The `mcpvault` binary: the README walkthrough, exit codes, stdin, key files.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

struct Cli {
    home: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        Cli {
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_stdin(args, None)
    }

    fn run_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.run_bytes(args, stdin.map(str::as_bytes))
    }

    fn run_bytes(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcpvault"))
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("MCPVAULT_NOW")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            let written = child.stdin.take().unwrap().write_all(input);
            // the CLI may refuse before it has read everything
            if let Err(e) = written {
                assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
            }
        }
        drop(child.stdin.take());
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

    fn key_file(&self) -> std::path::PathBuf {
        self.home.path().join(".mcpvault/keys/default.json")
    }

    fn pubkey(&self) -> String {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(self.key_file()).unwrap()).unwrap();
        v["public_key"].as_str().unwrap().to_string()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn readme_walkthrough() {
    let cli = Cli::new();
    cli.ok(&["keygen"]);
    let key = cli.key_file();
    let token = cli.ok(&[
        "mint",
        "--key",
        key.to_str().unwrap(),
        "--tools",
        "db_query,file_read",
        "--ttl",
        "3600",
        "--issuer",
        "auth-server",
        "--subject",
        "agent-a",
    ]);
    let inspected: serde_json::Value =
        serde_json::from_str(&cli.ok(&["inspect", "--token", &token])).unwrap();
    assert_eq!(inspected["verified"], false);
    assert_eq!(
        inspected["tools"],
        serde_json::json!(["db_query", "file_read"])
    );
    // --web: the inspector's address, the token in the fragment (never sent to a server)
    assert_eq!(
        cli.ok(&["inspect", "--token", &token, "--web"]),
        format!("http://127.0.0.1:8787/examples/inspector/#token={token}")
    );
    assert_eq!(
        cli.ok(&[
            "inspect",
            "--token",
            &token,
            "--web",
            "http://127.0.0.1:9000/"
        ]),
        format!("http://127.0.0.1:9000/examples/inspector/#token={token}")
    );
    assert!(!cli
        .run(&["inspect", "--token", "garbage", "--web"])
        .status
        .success());
    let pk = cli.pubkey();
    let facts: serde_json::Value = serde_json::from_str(&cli.ok(&[
        "verify", "--token", &token, "--pubkey", &pk, "--tool", "db_query",
    ]))
    .unwrap();
    assert_eq!(facts["verified"], true);
    assert_eq!(facts["subject"], "agent-a");

    let narrow = cli.ok(&[
        "attenuate",
        "--token",
        &token,
        "--tools",
        "db_query",
        "--ttl",
        "300",
    ]);
    cli.ok(&[
        "verify", "--token", &narrow, "--pubkey", &pk, "--tool", "db_query",
    ]);
    for tool in ["file_read", "admin_delete"] {
        let out = cli.run(&[
            "verify", "--token", &narrow, "--pubkey", &pk, "--tool", tool,
        ]);
        assert_eq!(out.status.code(), Some(1), "{tool}");
        assert!(
            stderr(&out).contains("tool_not_allowed"),
            "{}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn key_file_is_private_and_not_overwritten() {
    let cli = Cli::new();
    cli.ok(&["keygen"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&cli.key_file()), 0o600);
        assert_eq!(mode(cli.key_file().parent().unwrap()), 0o700);
    }
    let first = cli.pubkey();
    let out = cli.run(&["keygen"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--force"));
    assert_eq!(cli.pubkey(), first);
    cli.ok(&["keygen", "--force"]);
    assert_ne!(cli.pubkey(), first);
    let other = cli.home.path().join("elsewhere/k.json");
    cli.ok(&["keygen", "--out", other.to_str().unwrap()]);
    assert!(other.exists());
}

#[test]
fn exit_codes_stdin_and_warnings() {
    let cli = Cli::new();
    cli.ok(&["keygen"]);
    let pk = cli.pubkey();
    let token = cli.ok(&[
        "mint",
        "--tools",
        "db_query",
        "--ttl",
        "60",
        "--issuer",
        "i",
        "--subject",
        "s",
        "--arg",
        "db_query.max_rows<=100",
        "--audience",
        "srv",
        "--now",
        "1800000000",
    ]);
    // stdin
    let out = cli.run_stdin(&["inspect", "--token", "-"], Some(&format!("{token}\n")));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // widening is refused and said on stderr
    let out = cli.run(&[
        "attenuate",
        "--token",
        &token,
        "--tools",
        "db_query,admin",
        "--now",
        "1800000000",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("\"admin\" is not granted by the parent token and stays refused"),
        "{}",
        stderr(&out)
    );
    // arguments, audience, now
    let base = [
        "verify",
        "--token",
        &token,
        "--pubkey",
        &pk,
        "--tool",
        "db_query",
        "--audience",
        "srv",
    ];
    let with = |extra: &[&str]| {
        let mut v: Vec<&str> = base.to_vec();
        v.extend_from_slice(extra);
        cli.run(&v)
    };
    assert_eq!(
        with(&["--args", r#"{"max_rows": 100}"#, "--now", "1800000000"])
            .status
            .code(),
        Some(0)
    );
    let out = with(&["--args", r#"{"max_rows": 101}"#, "--now", "1800000000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("argument_not_allowed"));
    let out = with(&["--args", r#"{"max_rows": 1}"#, "--now", "1800000060"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("expired"));
    // bad input is exit 2
    assert_eq!(with(&["--args", "[1]"]).status.code(), Some(2));
    assert_eq!(with(&["--args", "{nope"]).status.code(), Some(2));
    let out = cli.run(&[
        "verify", "--token", &token, "--pubkey", "abcd", "--tool", "db_query",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("invalid_key"));
    assert_eq!(
        cli.run(&["verify", "--token", &token, "--pubkey", &pk])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        cli.run(&[
            "mint",
            "--tools",
            "db_query",
            "--ttl",
            "0",
            "--issuer",
            "i",
            "--subject",
            "s"
        ])
        .status
        .code(),
        Some(2)
    );
    assert_eq!(
        cli.run(&[
            "mint",
            "--tools",
            "x",
            "--ttl",
            "5",
            "--issuer",
            "i",
            "--subject",
            "s",
            "--arg",
            "nodot<=1"
        ])
        .status
        .code(),
        Some(2)
    );
    assert_eq!(
        cli.run(&["inspect", "--token", "garbage"]).status.code(),
        Some(2)
    );
    // a malformed token at verify is a denial
    let out = cli.run(&[
        "verify", "--token", "garbage", "--pubkey", &pk, "--tool", "db_query",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("malformed_token"));
    // tools/list needs no tool
    let out = cli.run(&[
        "verify",
        "--token",
        &token,
        "--pubkey",
        &pk,
        "--method",
        "tools/list",
        "--audience",
        "srv",
        "--now",
        "1800000000",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Like ssh: a private key file others may read is refused, and no output
/// ever contains the private key (not the key file's, not a mistyped one's).
#[cfg(unix)]
#[test]
fn open_key_files_are_refused_and_private_keys_never_printed() {
    use std::os::unix::fs::PermissionsExt;
    let cli = Cli::new();
    cli.ok(&["keygen"]);
    let key = cli.key_file();
    let secret = {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&key).unwrap()).unwrap();
        v["private_key"].as_str().unwrap().to_string()
    };
    let mint = [
        "mint",
        "--tools",
        "db_query",
        "--ttl",
        "60",
        "--issuer",
        "i",
        "--subject",
        "s",
    ];
    cli.ok(&mint);
    for mode in [0o640, 0o604, 0o644, 0o660] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = cli.run(&mint);
        assert_eq!(out.status.code(), Some(2), "mode {mode:o}");
        let err = stderr(&out);
        assert!(
            err.contains("too open") && err.contains("chmod 600"),
            "{err}"
        );
        assert!(!err.contains(&secret));
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    cli.ok(&mint);
    // a corrupted key file: the error names the place, never the content
    let text = std::fs::read_to_string(&key).unwrap();
    std::fs::write(&key, text.replace("\"private_key\"", "\"private_key\" x")).unwrap();
    let out = cli.run(&mint);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is not a key file"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains(&secret));
    // a private key that is not a key
    std::fs::write(&key, text.replace(&secret, &format!("{}zz", &secret[..62]))).unwrap();
    let out = cli.run(&mint);
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains(&secret[..62]), "{}", stderr(&out));
}

/// Bad input at the CLI boundary: invalid UTF-8 on stdin, an oversized token,
/// arguments that are not a JSON object, a malformed limit: each is a clear
/// message and exit 2 (1 is only a verification denial), never a panic.
#[test]
fn bad_input_is_a_clear_error() {
    let cli = Cli::new();
    cli.ok(&["keygen"]);
    let pk = cli.pubkey();
    let token = cli.ok(&[
        "mint",
        "--tools",
        "db_query",
        "--ttl",
        "60",
        "--issuer",
        "i",
        "--subject",
        "s",
    ]);
    let mut bytes = token.clone().into_bytes();
    bytes.insert(20, 0xff);
    let out = cli.run_bytes(&["inspect", "--token", "-"], Some(&bytes));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("UTF-8"), "{}", stderr(&out));

    let big = "A".repeat(70_000);
    let out = cli.run_stdin(
        &[
            "verify", "--token", "-", "--pubkey", &pk, "--tool", "db_query",
        ],
        Some(&big),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("limits_exceeded"), "{}", stderr(&out));

    for args in ["[1,2]", "\"x\"", "{not json", "null"] {
        let out = cli.run(&[
            "verify", "--token", &token, "--pubkey", &pk, "--tool", "db_query", "--args", args,
        ]);
        assert_eq!(out.status.code(), Some(2), "{args}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("invalid_request"),
            "{args}: {}",
            stderr(&out)
        );
    }
    for spec in ["db_query", "db_query.n<=x", ".n<=1x", "=", " in "] {
        let out = cli.run(&[
            "mint",
            "--tools",
            "db_query",
            "--ttl",
            "60",
            "--issuer",
            "i",
            "--subject",
            "s",
            "--arg",
            spec,
        ]);
        assert_eq!(out.status.code(), Some(2), "{spec}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{spec}");
    }
}

/// Issue 20: the `--arg` table of the README, end to end, and no silent drop.
#[test]
fn argument_constraints_from_the_command_line() {
    let cli = Cli::new();
    cli.ok(&["keygen"]);
    let pk = cli.pubkey();
    let mint = |tools: &str, limits: &[&str]| {
        let mut args = vec![
            "mint",
            "--tools",
            tools,
            "--ttl",
            "60",
            "--issuer",
            "i",
            "--subject",
            "s",
        ];
        for l in limits {
            args.extend(["--arg", l]);
        }
        cli.run(&args)
    };
    let out = mint(
        "fetch,deploy",
        &[
            "fetch.url url https://*.example.com",
            "fetch.path under /srv/public",
            "fetch.ip cidr 10.0.0.0/8",
            "deploy.config.mode=ro",
            "deploy.items[*] in a,b",
            "deploy.items.length<=2",
            "deploy.amount<=99.5",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let verify = |tool: &str, args: &str| {
        cli.run(&[
            "verify", "--token", &token, "--pubkey", &pk, "--tool", tool, "--args", args,
        ])
        .status
        .code()
    };
    let fetch_ok =
        r#"{"url": "https://api.example.com/x", "path": "/srv/public/a", "ip": "::ffff:10.1.2.3"}"#;
    assert_eq!(verify("fetch", fetch_ok), Some(0));
    for bad in [
        r#"{"url": "https://api.example.com@evil.net/", "path": "/srv/public/a", "ip": "10.1.2.3"}"#,
        r#"{"url": "https://api.example.com/", "path": "/srv/public/../../etc/passwd", "ip": "10.1.2.3"}"#,
        r#"{"url": "https://api.example.com/", "path": "/srv/public/a", "ip": "010.1.2.3"}"#,
    ] {
        assert_eq!(verify("fetch", bad), Some(1), "{bad}");
    }
    let deploy_ok = r#"{"config": {"mode": "ro"}, "items": ["a", "b"], "amount": 99.5}"#;
    assert_eq!(verify("deploy", deploy_ok), Some(0));
    for bad in [
        r#"{"config": {"mode": "rw"}, "items": ["a"], "amount": 1}"#,
        r#"{"config": {"mode": "ro"}, "items": ["a", "c"], "amount": 1}"#,
        r#"{"config": {"mode": "ro"}, "items": ["a", "a", "a"], "amount": 1}"#,
        r#"{"config": {"mode": "ro"}, "items": [], "amount": 99.51}"#,
    ] {
        assert_eq!(verify("deploy", bad), Some(1), "{bad}");
    }

    // a limit on a tool the token does not grant is refused, never dropped
    let out = mint("my.tool", &["my.tool.x=1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(r#"'"my.tool".PATH'"#),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        mint("my.tool", &[r#""my.tool".x=1"#]).status.code(),
        Some(0)
    );
    for bad in [
        "t.p under relative/dir",
        "t.u url ftp//x",
        "t.ip cidr 10.0.0.1/8",
        "t.c glob a[b]",
        "t.c matches (a",
    ] {
        let out = mint("t", &[bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("invalid_request"),
            "{bad}: {}",
            stderr(&out)
        );
    }
}

/// Issue 15: scopes in the token, the server's policy from a file.
#[test]
fn scopes_and_a_policy_file() {
    let cli = Cli::new();
    cli.ok(&["keygen"]);
    let pk = cli.pubkey();
    let token = cli.ok(&[
        "mint",
        "--scopes",
        "filesystem:files:read,pay:call",
        "--ttl",
        "60",
        "--issuer",
        "i",
        "--subject",
        "s",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"mappings": {"read_file": "filesystem:files:read"},
            "toolMappings": [{"tool": "write_file", "service": "filesystem", "scope": "files:write"}],
            "rules": [{"id": "cap", "tool": "pay", "when": {"amount": {"gte": 1000}}, "enforcement": "hard", "message": "ask a human"}]}"#,
    )
    .unwrap();
    let p = policy.to_str().unwrap();
    let verify = |tool: &str, args: &str, with_policy: bool| {
        let mut a = vec![
            "verify", "--token", &token, "--pubkey", &pk, "--tool", tool, "--args", args,
        ];
        if with_policy {
            a.extend(["--policy", p]);
        }
        cli.run(&a)
    };
    let out = verify("read_file", "{}", true);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"scope\": \"filesystem:files:read\""));
    // without the policy read_file maps to read_file:call, which the token does not grant
    assert_eq!(verify("read_file", "{}", false).status.code(), Some(1));
    assert_eq!(verify("write_file", "{}", true).status.code(), Some(1));
    assert_eq!(
        verify("pay", r#"{"amount": 5}"#, true).status.code(),
        Some(0)
    );
    let out = verify("pay", r#"{"amount": 5000}"#, true);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("rule_violation") && stderr(&out).contains("ask a human"),
        "{}",
        stderr(&out)
    );
    for bad in [
        r#"{"rules": [{"id": "x", "enforcement": "sometimes"}]}"#,
        r#"{"mapings": {}}"#,
        "not json",
    ] {
        std::fs::write(&policy, bad).unwrap();
        let out = verify("pay", "{}", true);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
    }
}

#[test]
fn quotas_from_the_command_line_and_a_closed_pipe() {
    let cli = Cli::new();
    cli.ok(&["keygen"]);
    let pk = cli.pubkey();
    // one clock for every step: windows are aligned on it
    let token = cli.ok(&[
        "--now",
        "1800000000",
        "mint",
        "--tools",
        "db_query,pay",
        "--ttl",
        "3600",
        "--issuer",
        "i",
        "--subject",
        "s",
        "--rate",
        "2/1h",
        "--budget",
        "pay.amount<=10/1d",
    ]);
    let child = cli.ok(&[
        "--now",
        "1800000000",
        "attenuate",
        "--token",
        &token,
        "--rate",
        "db_query:1/1m",
    ]);
    let info: serde_json::Value =
        serde_json::from_str(&cli.ok(&["inspect", "--token", &child])).unwrap();
    assert_eq!(
        info["blocks"][0]["rate"],
        serde_json::json!([{"max": 2, "period": 3600}])
    );
    assert_eq!(info["blocks"][0]["budget"][0]["arg"], "amount");
    assert_eq!(
        info["blocks"][1]["rate"],
        serde_json::json!([{"tool": "db_query", "max": 1, "period": 60}])
    );
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("s.db").display());
    let verify = |t: &str, tool: &str, args: &str| {
        cli.run(&[
            "--now",
            "1800000000",
            "verify",
            "--token",
            t,
            "--pubkey",
            &pk,
            "--tool",
            tool,
            "--args",
            args,
            "--store",
            &store,
        ])
    };
    assert_eq!(verify(&child, "db_query", "{}").status.code(), Some(0));
    let second = verify(&child, "db_query", "{}");
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stderr(&second).contains("rate_limited"),
        "{}",
        stderr(&second)
    );
    let pay = verify(&token, "pay", r#"{"amount": 11}"#);
    assert!(stderr(&pay).contains("budget_exceeded"), "{}", stderr(&pay));
    let no_amount = verify(&token, "pay", "{}");
    assert!(
        stderr(&no_amount).contains("argument_not_allowed"),
        "{}",
        stderr(&no_amount)
    );
    // a typo is refused with the syntax, not a panic
    for bad in ["--rate=5", "--rate=0/1m", "--budget=pay.amount=5/1d"] {
        let out = cli.run(&[
            "mint",
            "--tools",
            "pay",
            "--ttl",
            "60",
            "--issuer",
            "i",
            "--subject",
            "s",
            bad,
        ]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
    }
    // a reader that stops early (`| head`) is no failure and no panic
    let mut c = Command::new(env!("CARGO_BIN_EXE_mcpvault"))
        .args(["inspect", "--token", &child])
        .env("HOME", cli.home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(c.stdout.take());
    let out = c.wait_with_output().unwrap();
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0));
}

/// `request-hash` (and so `sign-call`) signs the call the guard decides: the core's `call_target` of the message the
/// flags describe. The CLI once built the target itself: the dry-run tool was signed as a tools/call of
/// `mcpvault.check` (the guard reads `mcpvault/check`, no name, no arguments), so its proof was `bad_proof`.
#[test]
fn request_hash_is_the_guards_call_target() {
    let cli = Cli::new();
    let out = mint_db_query(&cli, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let token_id = mcpvault::inspect(&token)
        .unwrap()
        .revocation_ids
        .pop()
        .unwrap();
    let with_token = serde_json::json!({ "sql": "x", "t": token }).to_string();
    let cases: Vec<(Vec<&str>, serde_json::Value)> = vec![
        (
            vec!["--tool", "db_query", "--args", r#"{"sql":"x"}"#],
            serde_json::json!({"method": "tools/call", "params": {"name": "db_query", "arguments": {"sql": "x"}}}),
        ),
        (
            vec![
                "--tool",
                "mcpvault.check",
                "--args",
                r#"{"tool":"db_query"}"#,
            ],
            serde_json::json!({"method": "tools/call", "params": {"name": "mcpvault.check", "arguments": {"tool": "db_query"}}}),
        ),
        (
            vec!["--tool", "db_query", "--args", &with_token],
            serde_json::json!({"method": "tools/call", "params": {"name": "db_query", "arguments": {"sql": "x"}}}),
        ),
        (
            vec!["--method", "resources/read", "--name", "file:///a.md"],
            serde_json::json!({"method": "resources/read", "params": {"uri": "file:///a.md"}}),
        ),
        (
            vec!["--method", "prompts/get", "--name", "summarize"],
            serde_json::json!({"method": "prompts/get", "params": {"name": "summarize"}}),
        ),
    ];
    for (flags, message) in cases {
        let mut args = vec!["request-hash", "--token", token.as_str()];
        args.extend(flags.iter().copied());
        let target = mcpvault::guard::call_target(&message, Some(&token)).unwrap();
        let expected = mcpvault::proof::request_hash(&mcpvault::proof::Call {
            token_id: &token_id,
            method: &target.method,
            name: target.name.as_deref(),
            arguments: &target.arguments,
            audience: None,
        });
        assert_eq!(cli.ok(&args), expected, "{flags:?}");
    }
}

/// A tool pinned twice is refused (the second `--pin` dropped the first one, silently, before).
#[test]
fn a_tool_pinned_twice_is_refused() {
    let cli = Cli::new();
    let (a, b) = (
        format!("db_query={}", "a".repeat(64)),
        format!("db_query={}", "b".repeat(64)),
    );
    let out = mint_db_query(&cli, &["--pin", &a, "--pin", &b]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("invalid_request") && stderr(&out).contains("two pins"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
}

/// A store that cannot be reached is a failing store (`internal_error`, exit 1: refused); a store of no known kind is
/// bad input (`invalid_request`, exit 2).
#[test]
fn a_store_that_cannot_be_opened_is_internal_error() {
    let cli = Cli::new();
    let id = "a".repeat(128);
    // port 1 on loopback: nothing listens there
    let out = cli.run(&["revoke", "--id", &id, "--store", "redis://127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("mcpvault: internal_error: store: "),
        "{}",
        stderr(&out)
    );
    let out = cli.run(&["revoke", "--id", &id, "--store", "memcached://x"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("mcpvault: invalid_request: unknown store"),
        "{}",
        stderr(&out)
    );
}

/// A fresh key, then `mint` of a db_query token (one hour, issuer i, subject s) with `extra` flags.
fn mint_db_query(cli: &Cli, extra: &[&str]) -> Output {
    cli.ok(&["keygen"]);
    let key = cli.key_file();
    let mut args = vec![
        "mint",
        "--key",
        key.to_str().unwrap(),
        "--tools",
        "db_query",
        "--ttl",
        "3600",
        "--issuer",
        "i",
        "--subject",
        "s",
    ];
    args.extend_from_slice(extra);
    cli.run(&args)
}
