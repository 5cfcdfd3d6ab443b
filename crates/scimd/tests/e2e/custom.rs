//! Custom user attributes: registered at run time, then usable everywhere a core
//! attribute is (create, PUT, PATCH, filter, sort, projection, feeds).

use crate::harness::{assert_scim_error, parts, Server};
use serde_json::{json, Value};

const EXT: &str = "urn:ietf:params:scim:schemas:extension:gluu:2.0:User";

fn register(s: &Server, name: &str, kind: &str, multi: bool) {
    let (st, body) = parts(s.post(
        "/admin/attributes",
        &json!({
        "name": name, "type": kind, "multiValued": multi}),
    ));
    assert_eq!(st, 201, "{body}");
}

fn user(name: &str, ext: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", EXT], "userName": name, EXT: ext})
}

#[test]
fn custom_attributes_work_like_core_ones() {
    let s = Server::start();
    let (st, body) = parts(
        s.get(&format!("/scim/v2/Schemas/{EXT}"))
            .send()
            .expect("get"),
    );
    assert_eq!(
        (st, &body["attributes"]),
        (200, &json!([])),
        "published empty before the first attribute, as Gluu does"
    );
    register(&s, "customAttr1", "string", false);
    register(&s, "customAttr2", "date", true);
    register(&s, "customAttr3", "numeric", false);
    register(&s, "isManager", "boolean", false);
    let (st, body) = parts(s.post(
        "/admin/attributes",
        &json!({"name": "customattr3", "type": "string"}),
    ));
    assert_eq!(st, 409, "names are case-insensitive: {body}");
    let (st, _) = parts(s.post(
        "/admin/attributes",
        &json!({"name": "bad name", "type": "string"}),
    ));
    assert_eq!(st, 400);
    let (st, _) = parts(s.post("/admin/attributes", &json!({"name": "x", "type": "float"})));
    assert_eq!(st, 400);

    // Published at once, no restart.
    let (st, schema) = parts(
        s.get(&format!("/scim/v2/Schemas/{EXT}"))
            .send()
            .expect("get"),
    );
    assert_eq!(st, 200);
    let names: Vec<&str> = schema["attributes"]
        .as_array()
        .expect("attrs")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["customAttr1", "customAttr2", "customAttr3", "isManager"]
    );
    let (_, rt) = parts(s.get("/scim/v2/ResourceTypes/User").send().expect("rt"));
    assert!(rt["schemaExtensions"]
        .as_array()
        .expect("ext")
        .iter()
        .any(|e| e["schema"] == EXT));

    // The seed's document round-trips.
    let seed = json!({"customAttr1": "String single-valued", "customAttr2": ["2016-02-23T15:35:22Z"], "customAttr3": 3000});
    let (st, u) = parts(s.post("/scim/v2/Users", &user("seed", seed.clone())));
    assert_eq!(st, 201, "{u}");
    assert_eq!(u[EXT], seed);
    assert!(u["schemas"]
        .as_array()
        .expect("schemas")
        .iter()
        .any(|x| x == EXT));
    let id = u["id"].as_str().expect("id").to_string();
    let (_, got) = parts(s.get(&format!("/scim/v2/Users/{id}")).send().expect("get"));
    assert_eq!(got[EXT], seed);

    // Each type's invalid input.
    for bad in [
        json!({"customAttr3": "3000"}),
        json!({"customAttr2": ["2020-09-09"]}),
        json!({"customAttr2": ["tomorrow"]}),
        json!({"customAttr2": "2016-02-23T15:35:22Z"}),
        json!({"customAttr1": 5}),
        json!({"isManager": "yes"}),
        json!({"nope": 1}),
    ] {
        let (st, body) = parts(s.post("/scim/v2/Users", &user("bad", bad.clone())));
        assert_eq!(st, 400, "{bad}: {body}");
    }

    for (name, n, mgr) in [
        ("low", 1000, false),
        ("mid", 2500, true),
        ("high", 9000, true),
    ] {
        let (st, body) = parts(s.post(
            "/scim/v2/Users",
            &user(name, json!({"customAttr3": n, "isManager": mgr})),
        ));
        assert_eq!(st, 201, "{body}");
    }
    // Filter as in the seed, and sort.
    let (_, found) = parts(
        s.get("/identity/restv1/scim/v2/Users")
            .query(&[
                ("filter", format!("{EXT}:customAttr3 gt 2000")),
                ("sortBy", format!("{EXT}:customAttr3")),
                ("sortOrder", "descending".into()),
            ])
            .send()
            .expect("filter"),
    );
    let names: Vec<&str> = found["Resources"]
        .as_array()
        .expect("r")
        .iter()
        .filter_map(|r| r["userName"].as_str())
        .collect();
    assert_eq!(names, ["high", "seed", "mid"]);
    let (_, managers) = parts(
        s.get("/scim/v2/Users")
            .query(&[("filter", format!("{EXT}:isManager eq true"))])
            .send()
            .expect("f"),
    );
    assert_eq!(managers["totalResults"], 2);
    let (_, dated) = parts(
        s.get("/scim/v2/Users")
            .query(&[(
                "filter",
                format!("{EXT}:customAttr2 lt \"2017-01-01T00:00:00Z\""),
            )])
            .send()
            .expect("f"),
    );
    assert_eq!(dated["totalResults"], 1);

    // Projection with URN paths.
    let (_, only) = parts(
        s.get(&format!("/scim/v2/Users/{id}"))
            .query(&[("attributes", format!("{EXT}:customAttr3"))])
            .send()
            .expect("get"),
    );
    assert_eq!(only[EXT], json!({"customAttr3": 3000}));
    assert!(only.get("userName").is_none());
    let (_, without) = parts(
        s.get(&format!("/scim/v2/Users/{id}"))
            .query(&[("excludedAttributes", EXT)])
            .send()
            .expect("get"),
    );
    assert!(without.get(EXT).is_none());

    // PATCH with and without path.
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "replace", "path": format!("{EXT}:customAttr3"), "value": 4000},
        {"op": "add", "path": format!("{EXT}:customAttr2"), "value": ["2020-01-01T00:00:00Z"]},
        {"op": "add", "value": {EXT: {"customAttr1": "patched"}}}]});
    let (st, p) = parts(s.patch(&format!("/scim/v2/Users/{id}"), &patch));
    assert_eq!(st, 200, "{p}");
    assert_eq!(p[EXT]["customAttr3"], 4000);
    assert_eq!(p[EXT]["customAttr1"], "patched");
    assert_eq!(p[EXT]["customAttr2"].as_array().map(Vec::len), Some(2));
    let bad = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "replace", "path": format!("{EXT}:customAttr3"), "value": "4000"}]});
    assert_scim_error(
        s.patch(&format!("/scim/v2/Users/{id}"), &bad),
        400,
        Some("invalidValue"),
    );
    // PUT keeps them too.
    let mut put = p.clone();
    put[EXT]["customAttr1"] = json!("put");
    let (st, p2) = parts(s.put(&format!("/scim/v2/Users/{id}"), &put));
    assert_eq!(st, 200, "{p2}");
    assert_eq!(p2[EXT]["customAttr1"], "put");

    // The IDM-sync feed shows custom attributes under their own names.
    let (_, feed) = parts(
        s.get("/scim/UpdatedUsers?timeStamp=2000-01-01T00:00:00Z")
            .send()
            .expect("feed"),
    );
    let entry = feed["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["uid"] == json!(["seed"]))
        .expect("seed")
        .clone();
    assert_eq!(entry["customAttr3"], json!([4000]));

    // Removal of an attribute holding data needs force, which clears the values.
    let (st, body) = parts(
        s.delete("/admin/attributes/customAttr3")
            .send()
            .expect("delete"),
    );
    assert_eq!(st, 409, "{body}");
    let (st, body) = parts(
        s.delete("/admin/attributes/customAttr3?force=true")
            .send()
            .expect("delete"),
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["clearedUsers"], 4);
    let (_, after) = parts(s.get(&format!("/scim/v2/Users/{id}")).send().expect("get"));
    assert!(after[EXT].get("customAttr3").is_none(), "{after}");
    let (st, _) = parts(
        s.get("/scim/v2/Users")
            .query(&[("filter", format!("{EXT}:customAttr3 gt 1"))])
            .send()
            .expect("f"),
    );
    assert_eq!(st, 400, "unknown now");
    let (st, _) = parts(
        s.delete("/admin/attributes/neverThere")
            .send()
            .expect("delete"),
    );
    assert_eq!(st, 404);
}

fn cli(s: &Server, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scimd"))
        .args(args)
        .arg("--data-dir")
        .arg(&s.data_dir)
        .args(s.database_args())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run scimd");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn cli_registers_attributes_for_a_running_server() {
    let s = Server::start();
    let (ok, out) = cli(
        &s,
        &["attributes", "add", "--name", "badge", "--type", "numeric"],
    );
    assert!(ok, "{out}");
    let (ok, out) = cli(
        &s,
        &[
            "attributes",
            "add",
            "--name",
            "tags",
            "--type",
            "string",
            "--multi-valued",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = cli(&s, &["attributes", "add", "--name", "x", "--type", "float"]);
    assert!(!ok, "{out}");
    let (ok, out) = cli(&s, &["attributes", "list"]);
    assert!(
        ok && out.contains("badge\tnumeric") && out.contains("tags\tstring (multi-valued)"),
        "{out}"
    );
    // The running server sees them within seconds, without a restart.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (st, body) = parts(
            s.get(&format!("/scim/v2/Schemas/{EXT}"))
                .send()
                .expect("get"),
        );
        let names: Vec<&str> = body["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["name"].as_str())
            .collect();
        if st == 200 && names.contains(&"badge") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "extension never published"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (st, body) = parts(s.post(
        "/scim/v2/Users",
        &user("carded", json!({"badge": 7, "tags": ["a"]})),
    ));
    assert_eq!(st, 201, "{body}");
    let (ok, out) = cli(&s, &["attributes", "remove", "badge"]);
    assert!(!ok && out.contains("force"), "{out}");
    let (ok, out) = cli(&s, &["attributes", "remove", "badge", "--force"]);
    assert!(ok && out.contains("1 users"), "{out}");
}
