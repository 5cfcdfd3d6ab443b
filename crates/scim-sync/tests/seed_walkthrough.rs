//! The seed's walkthrough (PingIDM "sync-with-scim") on in-memory data, with the
//! example configuration of `examples/sync-with-scim/`: test the connector,
//! reconcile accounts → users, change a user and reconcile it back, then groups
//! both ways with one membership change. Plans are carried out by a small
//! in-memory executor whose PATCHes go through scim-proto's PATCH engine, so
//! every operation the planner emits is one a SCIM server accepts.
// The executor's helpers are test code too: a failure should stop loudly.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use scim_proto::patch::apply_patch;
use scim_proto::schema::SchemaRegistry;
use scim_sync::config::{AuthConfig, Connector, Quirks, SyncConfig};
use scim_sync::links::{Link, LinkIndex};
use scim_sync::ops::{patch_request, PatchOp};
use scim_sync::plan::{plan, Change, LinkChange, Plan, PlanInput};
use scim_sync::secret::SecretLookup;
use scim_sync::situation::{Action, Situation};
use serde_json::{json, Value};
use std::collections::HashMap;

const CONNECTOR: &str =
    include_str!("../../../examples/sync-with-scim/provisioner.openicf-scim.json");
const SYNC: &str = include_str!("../../../examples/sync-with-scim/sync.json");
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// One side's objects of one kind, with ids handed out in order.
struct Side {
    prefix: &'static str,
    kind: &'static str,
    objects: Vec<Value>,
    next: usize,
}

impl Side {
    fn new(prefix: &'static str, kind: &'static str, objects: Vec<Value>) -> Side {
        Side {
            prefix,
            kind,
            objects,
            next: 0,
        }
    }

    fn get(&self, id: &str) -> &Value {
        self.objects.iter().find(|o| o["id"] == id).unwrap()
    }

    fn get_mut(&mut self, id: &str) -> &mut Value {
        self.objects.iter_mut().find(|o| o["id"] == id).unwrap()
    }
}

struct World {
    registry: SchemaRegistry,
    config: SyncConfig,
    /// Link tables by link-set name.
    links: HashMap<String, Vec<Link>>,
}

impl World {
    fn plan(&self, mapping: &str, source: &Side, target: &Side) -> Plan {
        let m = self.config.mapping(mapping).unwrap();
        let member_links = match self.config.member_links_of(m) {
            Some((set, reverse)) if m.maps_members() => {
                let links = self.links.get(set).cloned().unwrap_or_default();
                LinkIndex::new(&links, reverse)
            }
            _ => LinkIndex::default(),
        };
        let links = self.links.get(m.link_set()).cloned().unwrap_or_default();
        plan(&PlanInput {
            mapping: m,
            registry: &self.registry,
            sources: &source.objects,
            targets: &target.objects,
            links: &links,
            member_links: &member_links,
            dry_run: false,
            expressions: &scim_sync::mapping::NoExpressions,
        })
        .unwrap()
    }

    /// Carry a plan out on `target`, as the runtime will over HTTP or the store.
    fn execute(&mut self, p: &Plan, target: &mut Side) {
        let m = self.config.mapping(&p.mapping).unwrap().clone();
        let rt = self.registry.resource_type(target.kind).unwrap().clone();
        for d in &p.decisions {
            let created = match &d.change {
                Change::None => None,
                Change::Create(doc) => {
                    target.next += 1;
                    let id = format!("{}{}", target.prefix, target.next);
                    let mut doc = doc.clone();
                    doc["id"] = json!(id);
                    target.objects.push(doc);
                    Some(id)
                }
                Change::Patch(ops) | Change::Disable(ops) => {
                    let id = d.target_id.as_deref().unwrap();
                    let current = target.get(id).clone();
                    let body = patch_request(ops, Quirks::Standard);
                    let patched = apply_patch(&self.registry, &rt, &current, &body)
                        .unwrap_or_else(|e| panic!("{body}: {}", e.detail));
                    *target.get_mut(id) = patched;
                    None
                }
                Change::Delete => {
                    let id = d.target_id.as_deref().unwrap();
                    target.objects.retain(|o| o["id"] != id);
                    None
                }
            };
            let links = self.links.entry(m.link_set().to_string()).or_default();
            match &d.link {
                LinkChange::None => {}
                LinkChange::Add(l) => links.push(l.clone()),
                LinkChange::AddAfterCreate => {
                    let source = d.source_id.as_deref().unwrap();
                    let new = created.as_deref().unwrap();
                    links.push(Link::between(m.is_reverse(), source, new));
                }
                LinkChange::Remove(l) => links.retain(|x| x != l),
            }
        }
    }
}

fn account(id: &str, user_name: &str, given: &str, email: &str) -> Value {
    json!({"schemas": [USER], "id": id, "userName": user_name, "displayName": given,
           "name": {"givenName": given, "familyName": "Doe"},
           "emails": [{"value": email, "type": "work", "primary": true}],
           "active": true})
}

fn summary(p: &Plan) -> Vec<(Situation, Action)> {
    p.decisions
        .iter()
        .map(|d| (d.situation, d.action))
        .collect()
}

fn writes(p: &Plan) -> usize {
    p.changes().count()
}

#[test]
fn the_seed_walkthrough() {
    // Step 3–4: the connector file parses and its secret resolves from the environment.
    let connector = Connector::parse("provisioner.openicf-scim.json", CONNECTOR).unwrap();
    assert_eq!(connector.name, "scim");
    assert!(matches!(connector.auth, AuthConfig::OAuth { .. }));
    struct Env;
    impl SecretLookup for Env {
        fn env(&self, name: &str) -> Option<String> {
            (name == "SCIM_CLIENT_SECRET").then(|| "s3cret".to_string())
        }
        fn file(&self, _: &str) -> Result<String, String> {
            Err("not used".into())
        }
    }
    let auth = connector.resolve_auth(&Env).unwrap();
    assert!(!format!("{auth:?}").contains("s3cret"));

    let registry = SchemaRegistry::standard();
    let config = SyncConfig::parse("sync.json", SYNC, &registry).unwrap();
    config
        .check_connectors("sync.json", &[connector.name.as_str()])
        .unwrap();
    let mut world = World {
        registry,
        config,
        links: HashMap::new(),
    };
    let mut remote_users = Side::new(
        "r-u",
        "User",
        vec![
            account("ra", "alice", "Alice", "alice@example.com"),
            account("rb", "bob", "Bob", "bob@example.com"),
        ],
    );
    let mut local_users = Side::new("l-u", "User", Vec::new());

    // Step 5–6: accounts → users creates both, linked on ids.
    let p = world.plan("systemScimAccount_managedUser", &remote_users, &local_users);
    assert_eq!(summary(&p), vec![(Situation::Absent, Action::Create); 2]);
    world.execute(&p, &mut local_users);
    let alice = local_users.objects[0].clone();
    assert_eq!(alice["userName"], "alice");
    assert_eq!(alice["externalId"], "ra");
    assert_eq!(
        alice["emails"],
        json!([{"type": "work", "value": "alice@example.com"}])
    );
    let again = world.plan("systemScimAccount_managedUser", &remote_users, &local_users);
    assert_eq!(
        summary(&again),
        vec![(Situation::Confirmed, Action::Update); 2]
    );
    assert_eq!(writes(&again), 0, "a no-change re-run writes nothing");

    // Step 7–9: change a user locally and reconcile it back: one PATCH, one operation.
    let alice_id = alice["id"].as_str().unwrap().to_string();
    local_users.get_mut(&alice_id)["name"]["givenName"] = json!("Alicia");
    let p = world.plan("managedUser_systemScimAccount", &local_users, &remote_users);
    assert_eq!(summary(&p), vec![(Situation::Confirmed, Action::Update); 2]);
    let changed: Vec<_> = p.changes().collect();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].target_id.as_deref(), Some("ra"));
    assert_eq!(
        changed[0].change,
        Change::Patch(vec![PatchOp::replace("name.givenName", json!("Alicia"))])
    );
    world.execute(&p, &mut remote_users);
    assert_eq!(remote_users.get("ra")["name"]["givenName"], "Alicia");
    assert_eq!(remote_users.get("ra")["userName"], "alice");
    let again = world.plan("managedUser_systemScimAccount", &local_users, &remote_users);
    assert_eq!(writes(&again), 0);

    // Step 10: remote groups → local roles, members translated through the user links.
    let mut remote_groups = Side::new(
        "r-g",
        "Group",
        vec![
            json!({"schemas": [GROUP], "id": "rg1", "displayName": "Engineering",
                    "members": [{"value": "ra"}]}),
        ],
    );
    let mut local_roles = Side::new("l-g", "Group", Vec::new());
    let p = world.plan("systemScimGroup_managedRole", &remote_groups, &local_roles);
    assert_eq!(summary(&p), vec![(Situation::Absent, Action::Create)]);
    world.execute(&p, &mut local_roles);
    let role = local_roles.objects[0].clone();
    assert_eq!(role["displayName"], "Engineering");
    assert_eq!(role["members"], json!([{"value": alice_id}]));

    // Step 11–13: add bob to the role locally; reconciling back sends one PATCH add
    // of bob alone.
    let bob_id = local_users.objects[1]["id"].as_str().unwrap().to_string();
    let role_id = role["id"].as_str().unwrap().to_string();
    local_roles.get_mut(&role_id)["members"]
        .as_array_mut()
        .unwrap()
        .push(json!({"value": bob_id}));
    let p = world.plan("managedRole_systemScimGroup", &local_roles, &remote_groups);
    assert_eq!(summary(&p), vec![(Situation::Confirmed, Action::Update)]);
    assert_eq!(
        p.decisions[0].change,
        Change::Patch(vec![PatchOp::add("members", json!([{"value": "rb"}]))])
    );
    world.execute(&p, &mut remote_groups);
    let members: Vec<_> = remote_groups.get("rg1")["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].clone())
        .collect();
    assert_eq!(members, vec![json!("ra"), json!("rb")]);
    let again = world.plan("managedRole_systemScimGroup", &local_roles, &remote_groups);
    assert_eq!(writes(&again), 0);

    // A rename on the remote stays a rename locally: an update of the linked user.
    remote_users.get_mut("rb")["userName"] = json!("robert");
    let p = world.plan("systemScimAccount_managedUser", &remote_users, &local_users);
    let bob = p
        .decisions
        .iter()
        .find(|d| d.source_id.as_deref() == Some("rb"))
        .unwrap();
    assert_eq!(
        (bob.situation, bob.action),
        (Situation::Confirmed, Action::Update)
    );
    assert_eq!(
        bob.change,
        Change::Patch(vec![PatchOp::replace("userName", json!("robert"))])
    );
    assert!(p
        .decisions
        .iter()
        .all(|d| d.action != Action::Create && d.action != Action::Delete));
}
