//! The real `fetch-creds` binary against a real HTTP server on 127.0.0.1.
//!
//! Every test checks the exit code, the words a user would read, and that neither the account
//! password, the bearer token nor any MQTT password shows up in stdout or stderr.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use support::{api, credential, login, one_org, run_in, Auth, MockApi, Reply};

// Exit codes, as documented at the top of src/main.rs.
const USAGE: i32 = 2;
const CREDENTIALS: i32 = 3;
const TLS: i32 = 4;
const AUTH: i32 = 5;
const PLAINTEXT: i32 = 7;
const NETWORK: i32 = 8;
const NOT_FOUND: i32 = 10;
const API_FAILED: i32 = 11;
const BAD_RESPONSE: i32 = 12;
const NOTHING: i32 = 13;
const CHOICE: i32 = 14;
const EXISTS: i32 = 15;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// The files in `dir`, sorted, to catch leftover temporary files.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// One organization whose mqttUsers answer is `users`.
async fn server_with_users(users: Reply) -> MockApi {
    MockApi::start(
        Auth::Basic,
        api(one_org(), move |org| {
            if org == "org-1" {
                users.clone()
            } else {
                Reply::status(404)
            }
        }),
    )
    .await
}

#[test]
fn base64_matches_the_rfc_examples() {
    assert_eq!(support::base64(b"user:pass"), "dXNlcjpwYXNz");
    assert_eq!(support::base64(b"fo"), "Zm8=");
    assert_eq!(support::base64(b"f"), "Zg==");
}

#[tokio::test]
async fn orgs_lists_ids_and_names_with_basic_auth() {
    let server = MockApi::start(
        Auth::Basic,
        api(
            Reply::json(json!([
                { "id": "org-1", "name": "Acme Logistics" },
                { "organizationId": 77, "organizationName": "Beta Hospital" },
            ])),
            |_| Reply::status(500),
        ),
    )
    .await;
    let dir = tempdir();
    run_in(dir.path(), &["orgs", "--base-url", &server.url()], &login())
        .await
        .expect_code(0)
        .stdout_has("ORGANIZATION ID")
        .stdout_has("org-1")
        .stdout_has("Acme Logistics")
        .stdout_has("77")
        .stdout_has("Beta Hospital")
        .no_secrets(&[]);
}

#[tokio::test]
async fn orgs_in_a_paging_envelope_are_accepted() {
    let server = MockApi::start(
        Auth::Basic,
        api(
            Reply::json(
                json!({ "content": [{ "uuid": "u-9", "name": "Gamma" }], "totalElements": 1 }),
            ),
            |_| Reply::status(500),
        ),
    )
    .await;
    let dir = tempdir();
    run_in(dir.path(), &["orgs", "--base-url", &server.url()], &login())
        .await
        .expect_code(0)
        .stdout_has("u-9")
        .stdout_has("Gamma");
}

#[tokio::test]
async fn wrong_password_is_http_401_and_exit_5() {
    let server = server_with_users(Reply::json(json!([credential("a", json!(1))]))).await;
    let dir = tempdir();
    let wrong = "Wr0ng-password-never-printed";
    run_in(
        dir.path(),
        &["--base-url", &server.url()],
        &[
            ("LINKLABS_USERNAME", support::USERNAME),
            ("LINKLABS_PASSWORD", wrong),
        ],
    )
    .await
    .expect_code(AUTH)
    .stderr_has("HTTP 401")
    .stderr_has("LINKLABS_PASSWORD")
    .stderr_has("not the MQTT user name")
    .no_secrets(&[wrong]);
    assert_eq!(server.requests(), 1, "stops at the first refusal");
    assert!(!dir.path().join("creds.json").exists());
}

#[tokio::test]
async fn wrong_user_name_is_http_401_too() {
    let server = server_with_users(Reply::json(json!([]))).await;
    let dir = tempdir();
    run_in(
        dir.path(),
        &[
            "orgs",
            "--base-url",
            &server.url(),
            "--username",
            "mallory@example.com",
        ],
        &[("LINKLABS_PASSWORD", support::PASSWORD)],
    )
    .await
    .expect_code(AUTH)
    .stderr_has("mallory@example.com")
    .no_secrets(&[]);
}

#[tokio::test]
async fn not_an_admin_is_http_403_and_exit_5() {
    let server = server_with_users(Reply::status(403)).await;
    let dir = tempdir();
    run_in(dir.path(), &["list", "--base-url", &server.url()], &login())
        .await
        .expect_code(AUTH)
        .stderr_has("HTTP 403")
        .stderr_has("organization admin")
        .no_secrets(&[]);
}

#[tokio::test]
async fn unknown_organization_is_http_404_and_exit_10() {
    let server = server_with_users(Reply::json(json!([]))).await;
    let dir = tempdir();
    run_in(
        dir.path(),
        &["list", "--org", "no-such-org", "--base-url", &server.url()],
        &login(),
    )
    .await
    .expect_code(NOT_FOUND)
    .stderr_has("HTTP 404")
    .stderr_has("organization id no-such-org");
}

#[tokio::test]
async fn wrong_base_path_is_http_404_and_exit_10() {
    let server = server_with_users(Reply::json(json!([]))).await;
    let dir = tempdir();
    let base = format!("{}/wrong/prefix", server.url());
    run_in(dir.path(), &["orgs", "--base-url", &base], &login())
        .await
        .expect_code(NOT_FOUND)
        .stderr_has("HTTP 404")
        .stderr_has("--base-url");
}

#[tokio::test]
async fn server_error_is_exit_11() {
    let server = server_with_users(Reply::status(503)).await;
    let dir = tempdir();
    run_in(dir.path(), &["--base-url", &server.url()], &login())
        .await
        .expect_code(API_FAILED)
        .stderr_has("HTTP 503")
        .stderr_has("try again");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_with_exit_8() {
    let (addr, _server) = support::silent_server().await;
    let dir = tempdir();
    let base = format!("http://{addr}");
    let run = run_in(
        dir.path(),
        &["orgs", "--base-url", &base, "--timeout", "0.5"],
        &login(),
    )
    .await;
    run.expect_code(NETWORK)
        .stderr_has("did not answer within 0.5 s")
        .stderr_has("--timeout");
    assert!(run.elapsed < Duration::from_secs(10), "{:?}", run.elapsed);
}

#[tokio::test]
async fn an_unresolvable_host_is_a_dns_error_with_exit_8() {
    // RFC 6761: `.invalid` never resolves, so no request can leave the machine.
    let dir = tempdir();
    run_in(
        dir.path(),
        &[
            "orgs",
            "--base-url",
            "https://fetch-creds-test.invalid",
            "--timeout",
            "20",
        ],
        &login(),
    )
    .await
    .expect_code(NETWORK)
    .stderr_has("fetch-creds-test.invalid could not be resolved (DNS)");
}

#[tokio::test]
async fn a_closed_port_is_a_connection_error_with_exit_8() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let dir = tempdir();
    run_in(dir.path(), &["orgs", "--base-url", &base], &login())
        .await
        .expect_code(NETWORK)
        .stderr_has("could not connect")
        .stderr_has("refused");
}

#[tokio::test]
async fn an_html_page_is_not_json_exit_12() {
    let server = MockApi::start(
        Auth::Basic,
        api(
            Reply::raw(
                "text/html",
                "<!DOCTYPE html><html><body>Sign in</body></html>",
            ),
            |_| Reply::status(500),
        ),
    )
    .await;
    let dir = tempdir();
    run_in(dir.path(), &["orgs", "--base-url", &server.url()], &login())
        .await
        .expect_code(BAD_RESPONSE)
        .stderr_has("not JSON (text/html")
        .stderr_has("looks like a web page");
}

#[tokio::test]
async fn a_truncated_credentials_list_is_exit_12_and_never_quoted() {
    let full = json!([credential("a", json!(1))]).to_string();
    let half = full[..full.len() - 20].to_owned();
    assert!(half.contains("mqtt-secret-"), "the cut keeps the password");
    let server = server_with_users(Reply::raw("application/json", half)).await;
    let dir = tempdir();
    run_in(dir.path(), &["list", "--base-url", &server.url()], &login())
        .await
        .expect_code(BAD_RESPONSE)
        .stderr_has("not JSON")
        .no_secrets(&[]);
}

#[tokio::test]
async fn an_unexpected_json_shape_is_exit_12_naming_the_fields() {
    let server = server_with_users(Reply::json(json!({ "error": "x", "message": "y" }))).await;
    let dir = tempdir();
    run_in(dir.path(), &["--base-url", &server.url()], &login())
        .await
        .expect_code(BAD_RESPONSE)
        .stderr_has("expected a list of MQTT credential objects")
        .stderr_has("an object with the fields error, message");
}

#[tokio::test]
async fn organizations_without_an_id_are_exit_12() {
    let server = MockApi::start(
        Auth::Basic,
        api(Reply::json(json!([{ "title": "No id here" }])), |_| {
            Reply::status(500)
        }),
    )
    .await;
    let dir = tempdir();
    run_in(dir.path(), &["orgs", "--base-url", &server.url()], &login())
        .await
        .expect_code(BAD_RESPONSE)
        .stderr_has("\"id\"")
        .stderr_has("title");
}

#[tokio::test]
async fn no_credential_set_is_exit_13() {
    let server = server_with_users(Reply::json(json!([]))).await;
    let dir = tempdir();
    run_in(dir.path(), &["--base-url", &server.url()], &login())
        .await
        .expect_code(NOTHING)
        .stderr_has("organization org-1 has no MQTT credential set");
    assert_eq!(files_in(dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn no_organization_is_exit_13() {
    let server = MockApi::start(
        Auth::Basic,
        api(Reply::json(json!([])), |_| Reply::status(500)),
    )
    .await;
    let dir = tempdir();
    run_in(dir.path(), &["--base-url", &server.url()], &login())
        .await
        .expect_code(NOTHING)
        .stderr_has("sees no organization");
}

#[tokio::test]
async fn several_organizations_without_a_choice_is_exit_14() {
    let server = MockApi::start(
        Auth::Basic,
        api(
            Reply::json(
                json!([{ "id": "org-1", "name": "One" }, { "id": "org-2", "name": "Two" }]),
            ),
            |_| Reply::status(500),
        ),
    )
    .await;
    let dir = tempdir();
    run_in(dir.path(), &["list", "--base-url", &server.url()], &login())
        .await
        .expect_code(CHOICE)
        .stderr_has("--org")
        .stderr_has("org-2")
        .stderr_has("Two");
}

#[tokio::test]
async fn several_sets_without_a_choice_is_exit_14_listing_client_ids_only() {
    let server = server_with_users(Reply::json(json!([
        credential("alpha", json!(1)),
        credential("beta", json!(true)),
    ])))
    .await;
    let dir = tempdir();
    run_in(dir.path(), &["--base-url", &server.url()], &login())
        .await
        .expect_code(CHOICE)
        .stderr_has("--client-id")
        .stderr_has("alpha")
        .stderr_has("beta")
        .no_secrets(&[]);
    assert_eq!(files_in(dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn a_client_id_that_matches_nothing_is_exit_14() {
    let server = server_with_users(Reply::json(json!([credential("alpha", json!(1))]))).await;
    let dir = tempdir();
    run_in(
        dir.path(),
        &["--base-url", &server.url(), "save", "--client-id", "gamma"],
        &login(),
    )
    .await
    .expect_code(CHOICE)
    .stderr_has("no MQTT credential set with client id \"gamma\"")
    .stderr_has("alpha");
}

#[tokio::test]
async fn list_shows_every_set_and_no_password() {
    let mut broken = credential("broken", json!(1));
    broken.as_object_mut().expect("object").remove("host");
    let server = server_with_users(Reply::json(json!([
        credential("alpha", json!(1)),
        credential("off", json!(0)),
        broken,
    ])))
    .await;
    let dir = tempdir();
    let run = run_in(dir.path(), &["list", "--base-url", &server.url()], &login()).await;
    run.expect_code(0)
        .stdout_has("CLIENT ID")
        .stdout_has("SCOPE")
        .stdout_has("lls/org-1/alpha/#")
        .stdout_has("organization")
        .stdout_has("2026-02-03T04:05:06Z")
        .stdout_has("item 3 cannot be used")
        .stdout_has("\"host\"")
        .no_secrets(&[]);
    let off_row = run
        .stdout
        .lines()
        .find(|l| l.starts_with("off "))
        .expect("row for off");
    assert!(off_row.contains("NO"), "{off_row}");
    let alpha_row = run
        .stdout
        .lines()
        .find(|l| l.starts_with("alpha "))
        .expect("row for alpha");
    assert!(alpha_row.contains("yes"), "{alpha_row}");
}

#[tokio::test]
async fn save_writes_the_only_set_atomically_with_mode_0600() {
    let object = credential("alpha", json!(1));
    let server = server_with_users(Reply::json(json!([object.clone()]))).await;
    let dir = tempdir();
    run_in(dir.path(), &["--base-url", &server.url()], &login())
        .await
        .expect_code(0)
        .stdout_has("wrote creds.json (mode 0600)")
        .stdout_has("client id alpha")
        .stdout_has("cargo run -p tls-connect -- --creds creds.json")
        .no_secrets(&[]);

    let path = dir.path().join("creds.json");
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(
        files_in(dir.path()),
        vec!["creds.json"],
        "no temporary file left behind"
    );
    let written: Value = serde_json::from_slice(&fs::read(&path).expect("read")).expect("JSON");
    assert_eq!(written, object, "written as the API returned it");
    // The file is exactly what the other examples load.
    let loaded = common::CredentialsFile::load(&path, "--creds").expect("examples accept it");
    assert_eq!(loaded.credentials.client_id, "alpha");
    assert_eq!(
        loaded.credentials.password.expose(),
        support::mqtt_password("alpha")
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[tokio::test]
async fn save_picks_by_client_id_into_out() {
    let server = server_with_users(Reply::json(json!([
        credential("alpha", json!(1)),
        credential("beta", json!(1)),
    ])))
    .await;
    let dir = tempdir();
    fs::create_dir(dir.path().join("secrets")).expect("mkdir");
    run_in(
        dir.path(),
        // The flags of `save`, the default command, work without the word `save`.
        &[
            "--org",
            "org-1",
            "--client-id",
            "beta",
            "--out",
            "secrets/beta.json",
            "--base-url",
            &server.url(),
        ],
        &login(),
    )
    .await
    .expect_code(0)
    .stdout_has("wrote secrets/beta.json")
    .no_secrets(&[]);
    let path = dir.path().join("secrets/beta.json");
    assert_eq!(mode_of(&path), 0o600);
    let loaded = common::CredentialsFile::load(&path, "--creds").expect("valid");
    assert_eq!(loaded.credentials.client_id, "beta");
    assert_eq!(
        server.requests(),
        1,
        "--org given: organizations are not listed"
    );
}

#[tokio::test]
async fn an_existing_file_is_kept_without_force_and_replaced_atomically_with_it() {
    let server = server_with_users(Reply::json(json!([credential("alpha", json!(1))]))).await;
    let dir = tempdir();
    let path = dir.path().join("creds.json");
    fs::write(&path, "old contents\n").expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    // A second name for the old file: an in-place rewrite would change it, a rename does not.
    fs::hard_link(&path, dir.path().join("old-link")).expect("hard link");

    run_in(dir.path(), &["--base-url", &server.url()], &login())
        .await
        .expect_code(EXISTS)
        .stderr_has("creds.json already exists")
        .stderr_has("--force");
    assert_eq!(fs::read_to_string(&path).expect("read"), "old contents\n");
    assert_eq!(
        server.requests(),
        0,
        "refused before any request or password prompt"
    );

    run_in(
        dir.path(),
        &["--base-url", &server.url(), "save", "--force"],
        &login(),
    )
    .await
    .expect_code(0)
    .no_secrets(&[]);
    assert_eq!(
        mode_of(&path),
        0o600,
        "the new file is private even though the old was 0644"
    );
    common::CredentialsFile::load(&path, "--creds").expect("valid");
    assert_eq!(
        fs::read_to_string(dir.path().join("old-link")).expect("read"),
        "old contents\n",
        "replaced by rename, not rewritten in place"
    );
    assert_eq!(files_in(dir.path()), vec!["creds.json", "old-link"]);
}

#[tokio::test]
async fn a_disabled_set_is_saved_with_a_warning() {
    let server = server_with_users(Reply::json(json!([credential("off", json!(false))]))).await;
    let dir = tempdir();
    run_in(dir.path(), &["--base-url", &server.url()], &login())
        .await
        .expect_code(0)
        .stderr_has("disabled")
        .stderr_has("broker will refuse")
        .no_secrets(&[]);
    assert_eq!(mode_of(&dir.path().join("creds.json")), 0o600);
}

#[tokio::test]
async fn an_invalid_set_is_refused_with_exit_3() {
    let mut object = credential("alpha", json!(1));
    object["port"] = json!(70000);
    let server = server_with_users(Reply::json(json!([object]))).await;
    let dir = tempdir();
    run_in(dir.path(), &["--base-url", &server.url()], &login())
        .await
        .expect_code(CREDENTIALS)
        .stderr_has("\"port\"")
        .stderr_has("the Network Asset API response (item 1)")
        .no_secrets(&[]);
    assert_eq!(files_in(dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn a_password_of_the_wrong_type_is_not_quoted_in_the_error() {
    let mut object = credential("alpha", json!(1));
    object["password"] = json!(987_654_321);
    let server = server_with_users(Reply::json(json!([object]))).await;
    let dir = tempdir();
    run_in(dir.path(), &["--base-url", &server.url()], &login())
        .await
        .expect_code(CREDENTIALS)
        .stderr_has("\"password\"")
        .no_secrets(&["987654321"]);
}

#[tokio::test]
async fn a_bearer_token_is_sent_and_a_wrong_one_is_exit_5() {
    let server = MockApi::start(Auth::Bearer, api(one_org(), |_| Reply::status(500))).await;
    let dir = tempdir();
    run_in(
        dir.path(),
        &["orgs", "--base-url", &server.url()],
        &[("LINKLABS_TOKEN", support::TOKEN)],
    )
    .await
    .expect_code(0)
    .stdout_has("Acme Logistics")
    .no_secrets(&[]);

    let expired = "expired-T0ken-never-printed";
    run_in(
        dir.path(),
        &["orgs", "--base-url", &server.url()],
        &[("LINKLABS_TOKEN", expired)],
    )
    .await
    .expect_code(AUTH)
    .stderr_has("bearer token")
    .stderr_has("expired")
    .no_secrets(&[expired]);
}

#[tokio::test]
async fn no_login_and_no_terminal_is_exit_2() {
    let server = server_with_users(Reply::json(json!([]))).await;
    let dir = tempdir();
    run_in(
        dir.path(),
        &["orgs", "--base-url", &server.url()],
        &[("LINKLABS_USERNAME", support::USERNAME)],
    )
    .await
    .expect_code(USAGE)
    .stderr_has("LINKLABS_PASSWORD")
    .stderr_has("not accepted as a flag");
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn the_password_is_not_a_flag() {
    let dir = tempdir();
    run_in(dir.path(), &["orgs", "--password", "x"], &login())
        .await
        .expect_code(USAGE)
        .stderr_has("unexpected argument '--password'");
}

#[tokio::test]
async fn a_save_flag_before_another_subcommand_is_exit_2() {
    let dir = tempdir();
    run_in(dir.path(), &["--org", "org-1", "list"], &login())
        .await
        .expect_code(USAGE)
        .stderr_has("--org belongs after the subcommand");
}

#[tokio::test]
async fn plain_http_to_another_host_is_refused_with_exit_7() {
    let dir = tempdir();
    run_in(
        dir.path(),
        &["orgs", "--base-url", "http://fetch-creds-test.invalid"],
        &login(),
    )
    .await
    .expect_code(PLAINTEXT)
    .stderr_has("refusing to send your login over plain HTTP");
}

#[tokio::test]
async fn a_login_inside_the_url_is_refused_with_exit_2() {
    let dir = tempdir();
    run_in(
        dir.path(),
        &[
            "orgs",
            "--base-url",
            "https://bob:hunter2@fetch-creds-test.invalid",
        ],
        &login(),
    )
    .await
    .expect_code(USAGE)
    .stderr_has("contains a user name or password");
}

#[tokio::test]
async fn https_is_verified_against_the_ca_file() {
    let (acceptor, ca_pem) = support::tls_acceptor();
    let server = MockApi::start_with_tls(
        Auth::Basic,
        Some(acceptor),
        api(one_org(), |_| Reply::status(500)),
    )
    .await;
    let dir = tempdir();
    let ca_file = dir.path().join("ca.pem");
    fs::write(&ca_file, ca_pem).expect("write CA");
    let base = format!("https://{}", server.addr);
    let ca = ca_file.to_str().expect("utf-8 path");

    run_in(
        dir.path(),
        &["orgs", "--base-url", &base, "--ca-file", ca],
        &login(),
    )
    .await
    .expect_code(0)
    .stdout_has("Acme Logistics");

    // Without the CA the certificate is unknown: refused before any login is sent.
    let before = server.requests();
    run_in(dir.path(), &["orgs", "--base-url", &base], &login())
        .await
        .expect_code(TLS)
        .stderr_has("certificate")
        .stderr_has("--ca-file")
        .no_secrets(&[]);
    assert_eq!(server.requests(), before);
}

#[tokio::test]
async fn a_bad_ca_file_is_exit_4() {
    let dir = tempdir();
    let ca_file = dir.path().join("not-a-ca.pem");
    fs::write(&ca_file, "hello\n").expect("write");
    run_in(
        dir.path(),
        &[
            "orgs",
            "--base-url",
            "https://fetch-creds-test.invalid",
            "--ca-file",
            ca_file.to_str().expect("utf-8"),
        ],
        &login(),
    )
    .await
    .expect_code(TLS)
    .stderr_has("contains no PEM certificate");
}
