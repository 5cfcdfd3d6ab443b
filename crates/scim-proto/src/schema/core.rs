//! RFC 7643 §4 / §8.7.1 definitions of User, Group, EnterpriseUser and the common
//! attributes (§3.1).
//!
//! Deviations from §8.7.1, each deliberate:
//! - Group `displayName` is required: a group without a name is useless to every
//!   provisioning client we target, and Gluu and most servers require it too.
//! - Group `members` has a readOnly `display` sub-attribute (absent from §8.7.1
//!   but used by clients and §4.2's examples); the server fills it in.
//! - `addresses` has `primary` (§4.1.2 lists it; §8.7.1 omits it, a known erratum).
//! - Binary values are caseExact: base64 is case-significant (§2.3.6).
use super::model::*;
use super::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA};

/// A single-valued, optional, case-insensitive, readWrite, returned-by-default,
/// non-unique attribute: the most common shape, so the definitions below only
/// spell out how an attribute differs from it.
pub(crate) fn attr(name: &str, ty: AttrType) -> AttributeDef {
    AttributeDef {
        name: name.to_string(),
        ty,
        multi_valued: false,
        description: String::new(),
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        uniqueness: Uniqueness::None,
        canonical_values: Vec::new(),
        reference_types: Vec::new(),
        sub_attributes: Vec::new(),
    }
}

fn string(name: &str) -> AttributeDef {
    attr(name, AttrType::String)
}

fn complex(name: &str, subs: Vec<AttributeDef>) -> AttributeDef {
    let mut a = attr(name, AttrType::Complex);
    a.sub_attributes = subs;
    a
}

fn reference(name: &str, types: &[&str]) -> AttributeDef {
    let mut a = attr(name, AttrType::Reference);
    a.reference_types = types.iter().map(|t| t.to_string()).collect();
    a
}

// Private builder setters; they only exist to keep the tables below compact.
impl AttributeDef {
    fn desc(mut self, d: &str) -> Self {
        self.description = d.to_string();
        self
    }
    fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }
    fn required(mut self) -> Self {
        self.required = true;
        self
    }
    fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }
    fn read_only(self) -> Self {
        self.mutability(Mutability::ReadOnly)
    }
    fn immutable(self) -> Self {
        self.mutability(Mutability::Immutable)
    }
    fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }
    fn uniqueness(mut self, u: Uniqueness) -> Self {
        self.uniqueness = u;
        self
    }
    fn canonical(mut self, values: &[&str]) -> Self {
        self.canonical_values = values.iter().map(|v| v.to_string()).collect();
        self
    }
}

/// The `value`/`display`/`type`/`primary` quartet shared by the multi-valued
/// attributes of §2.4. `value` varies by attribute (type, referenceTypes), so the
/// caller builds it.
fn multi_valued(
    name: &str,
    what: &str,
    value: AttributeDef,
    types: &[&str],
    desc: &str,
) -> AttributeDef {
    complex(
        name,
        vec![
            value,
            string("display").desc("A human-readable name, primarily used for display purposes."),
            string("type")
                .canonical(types)
                .desc(&format!("A label indicating the {what}'s function.")),
            attr("primary", AttrType::Boolean).desc(&format!(
                "A Boolean value indicating the 'primary' or preferred {what}. The primary attribute value 'true' MUST appear no more than once."
            )),
        ],
    )
    .multi()
    .desc(desc)
}

/// id, externalId and meta (RFC 7643 §3.1), which every resource carries
/// regardless of its schema.
pub(super) fn common_attributes() -> Vec<AttributeDef> {
    vec![
        string("id")
            .case_exact()
            .read_only()
            .returned(Returned::Always)
            .uniqueness(Uniqueness::Server)
            .desc("A unique identifier for a SCIM resource as defined by the service provider."),
        string("externalId")
            .case_exact()
            .desc("A String that is an identifier for the resource as defined by the provisioning client."),
        complex(
            "meta",
            vec![
                string("resourceType")
                    .case_exact()
                    .read_only()
                    .desc("The name of the resource type of the resource."),
                attr("created", AttrType::DateTime)
                    .read_only()
                    .desc("The DateTime that the resource was added to the service provider."),
                attr("lastModified", AttrType::DateTime)
                    .read_only()
                    .desc("The most recent DateTime that the details of this resource were updated at the service provider."),
                reference("location", &["uri"])
                    .case_exact()
                    .read_only()
                    .desc("The URI of the resource being returned."),
                string("version")
                    .case_exact()
                    .read_only()
                    .desc("The version of the resource being returned (its entity tag)."),
            ],
        )
        .read_only()
        .desc("A complex attribute containing resource metadata."),
    ]
}

pub(super) fn user_schema() -> Schema {
    let name = complex(
        "name",
        vec![
            string("formatted").desc("The full name, including all middle names, titles, and suffixes as appropriate, formatted for display (e.g., 'Ms. Barbara J Jensen, III')."),
            string("familyName").desc("The family name of the User, or last name in most Western languages (e.g., 'Jensen' given the full name 'Ms. Barbara J Jensen, III')."),
            string("givenName").desc("The given name of the User, or first name in most Western languages (e.g., 'Barbara' given the full name 'Ms. Barbara J Jensen, III')."),
            string("middleName").desc("The middle name(s) of the User (e.g., 'Jane' given the full name 'Ms. Barbara J Jensen, III')."),
            string("honorificPrefix").desc("The honorific prefix(es) of the User, or title in most Western languages (e.g., 'Ms.' given the full name 'Ms. Barbara J Jensen, III')."),
            string("honorificSuffix").desc("The honorific suffix(es) of the User, or suffix in most Western languages (e.g., 'III' given the full name 'Ms. Barbara J Jensen, III')."),
        ],
    )
    .desc("The components of the user's real name.");

    let addresses = complex(
        "addresses",
        vec![
            string("formatted").desc("The full mailing address, formatted for display or use with a mailing label."),
            string("streetAddress").desc("The full street address component, which may include house number, street name, P.O. box, and multi-line extended street address information."),
            string("locality").desc("The city or locality component."),
            string("region").desc("The state or region component."),
            string("postalCode").desc("The zip code or postal code component."),
            string("country").desc("The country name component, as an ISO 3166-1 alpha-2 code."),
            string("type")
                .canonical(&["work", "home", "other"])
                .desc("A label indicating the address's function, e.g., 'work' or 'home'."),
            attr("primary", AttrType::Boolean).desc("A Boolean value indicating the 'primary' or preferred address. The primary attribute value 'true' MUST appear no more than once."),
        ],
    )
    .multi()
    .desc("A physical mailing address for this User.");

    let groups = complex(
        "groups",
        vec![
            string("value")
                .read_only()
                .desc("The identifier of the User's group."),
            reference("$ref", &["User", "Group"])
                .read_only()
                .desc("The URI of the corresponding 'Group' resource to which the user belongs."),
            string("display")
                .read_only()
                .desc("A human-readable name, primarily used for display purposes."),
            string("type")
                .canonical(&["direct", "indirect"])
                .read_only()
                .desc("A label indicating the attribute's function, e.g., 'direct' or 'indirect'."),
        ],
    )
    .multi()
    .read_only()
    .desc("A list of groups to which the user belongs, either through direct membership, through nested groups, or dynamically calculated.");

    Schema {
        id: USER_SCHEMA.to_string(),
        name: "User".to_string(),
        description: "User Account".to_string(),
        attributes: vec![
            string("userName")
                .required()
                .uniqueness(Uniqueness::Server)
                .desc("Unique identifier for the User, typically used by the user to directly authenticate to the service provider. Each User MUST include a non-empty userName value. This identifier MUST be unique across the service provider's entire set of Users."),
            name,
            string("displayName").desc("The name of the User, suitable for display to end-users."),
            string("nickName").desc("The casual way to address the user in real life, e.g., 'Bob' or 'Bobby' instead of 'Robert'."),
            reference("profileUrl", &["external"]).desc("A fully qualified URL pointing to a page representing the User's online profile."),
            string("title").desc("The user's title, such as \"Vice President\"."),
            string("userType").desc("Used to identify the relationship between the organization and the user. Typical values used might be 'Contractor', 'Employee', 'Intern', 'Temp', 'External', and 'Unknown'."),
            string("preferredLanguage").desc("Indicates the User's preferred written or spoken language, e.g., 'en-US'."),
            string("locale").desc("Used to indicate the User's default location for purposes of localizing items such as currency, date time format, or numerical representations."),
            string("timezone").desc("The User's time zone in the 'Olson' time zone database format, e.g., 'America/Los_Angeles'."),
            attr("active", AttrType::Boolean).desc("A Boolean value indicating the User's administrative status."),
            string("password")
                .mutability(Mutability::WriteOnly)
                .returned(Returned::Never)
                .desc("The User's cleartext password. Used to set or compare the password; it is never returned."),
            multi_valued(
                "emails",
                "e-mail address",
                string("value").desc("Email addresses for the user. The value SHOULD be canonicalized by the service provider, e.g., 'bjensen@example.com' instead of 'bjensen@EXAMPLE.COM'."),
                &["work", "home", "other"],
                "Email addresses for the user.",
            ),
            multi_valued(
                "phoneNumbers",
                "phone number",
                string("value").desc("Phone number of the User."),
                &["work", "home", "mobile", "fax", "pager", "other"],
                "Phone numbers for the User.",
            ),
            multi_valued(
                "ims",
                "instant messaging address",
                string("value").desc("Instant messaging address for the User."),
                &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
                "Instant messaging addresses for the User.",
            ),
            multi_valued(
                "photos",
                "photo",
                reference("value", &["external"]).desc("URL of a photo of the User."),
                &["photo", "thumbnail"],
                "URLs of photos of the User.",
            ),
            addresses,
            groups,
            multi_valued(
                "entitlements",
                "entitlement",
                string("value").desc("The value of an entitlement."),
                &[],
                "A list of entitlements for the User that represent a thing the User has.",
            ),
            multi_valued(
                "roles",
                "role",
                string("value").desc("The value of a role."),
                &[],
                "A list of roles for the User that collectively represent who the User is, e.g., 'Student', 'Faculty'.",
            ),
            multi_valued(
                "x509Certificates",
                "certificate",
                attr("value", AttrType::Binary)
                    .case_exact()
                    .desc("The value of an X.509 certificate (base64-encoded DER)."),
                &[],
                "A list of certificates issued to the User.",
            ),
        ],
    }
}

pub(super) fn group_schema() -> Schema {
    Schema {
        id: GROUP_SCHEMA.to_string(),
        name: "Group".to_string(),
        description: "Group".to_string(),
        attributes: vec![
            string("displayName")
                .required()
                .desc("A human-readable name for the Group."),
            complex(
                "members",
                vec![
                    string("value")
                        .immutable()
                        .desc("Identifier of the member of this Group."),
                    reference("$ref", &["User", "Group"]).immutable().desc(
                        "The URI corresponding to a SCIM resource that is a member of this Group.",
                    ),
                    string("display").read_only().desc(
                        "A human-readable name of the member, filled in by the service provider.",
                    ),
                    string("type")
                        .canonical(&["User", "Group"])
                        .immutable()
                        .desc("A label indicating the type of resource, e.g., 'User' or 'Group'."),
                ],
            )
            .multi()
            .desc("A list of members of the Group."),
        ],
    }
}

pub(super) fn enterprise_user_schema() -> Schema {
    Schema {
        id: ENTERPRISE_USER_SCHEMA.to_string(),
        name: "EnterpriseUser".to_string(),
        description: "Enterprise User".to_string(),
        attributes: vec![
            string("employeeNumber").desc("Numeric or alphanumeric identifier assigned to a person, typically based on order of hire or association with an organization."),
            string("costCenter").desc("Identifies the name of a cost center."),
            string("organization").desc("Identifies the name of an organization."),
            string("division").desc("Identifies the name of a division."),
            string("department").desc("Identifies the name of a department."),
            complex(
                "manager",
                vec![
                    string("value").desc("The id of the SCIM resource representing the User's manager."),
                    reference("$ref", &["User"]).desc("The URI of the SCIM resource representing the User's manager."),
                    string("displayName")
                        .read_only()
                        .desc("The displayName of the User's manager."),
                ],
            )
            .desc("The User's manager. A complex type that optionally allows service providers to represent organizational hierarchy by referencing the 'id' attribute of another User."),
        ],
    }
}

/// Gluu's FIDO U2F device (`…:core:2.0:FidoDevice`). Devices are enrolled by the
/// authentication flows, so almost everything about them is immutable; an admin
/// may relabel them or mark them compromised.
pub(super) fn fido_device_schema() -> Schema {
    let fixed = |a: AttributeDef| a.immutable();
    Schema {
        id: super::FIDO_DEVICE_SCHEMA.to_string(),
        name: "FidoDevice".to_string(),
        description: "FIDO U2F device".to_string(),
        attributes: vec![
            fixed(string("userId").case_exact()).desc("Identifier of the user owning this device."),
            fixed(attr("creationDate", AttrType::DateTime)).desc("When the device was enrolled."),
            fixed(string("application"))
                .desc("The application (origin) the device was registered for."),
            fixed(attr("counter", AttrType::Integer)).desc("Signature counter."),
            fixed(string("deviceData").case_exact())
                .desc("JSON document describing the device (platform, OS, name)."),
            fixed(string("deviceHashCode").case_exact()).desc("Hash code of the device."),
            fixed(string("deviceKeyHandle").case_exact()).desc("Key handle of the credential."),
            fixed(string("deviceRegistrationConf").case_exact())
                .desc("Registration configuration (JSON)."),
            fixed(attr("lastAccessTime", AttrType::DateTime))
                .desc("Last time the device was used."),
            string("status")
                .canonical(&["active", "compromised"])
                .desc("Device status."),
            string("displayName").desc("Name of the device, for display."),
            string("description").desc("Description of the device."),
            string("nickname").desc("Nickname the user gave the device."),
        ],
    }
}

/// Gluu's FIDO 2 device (`…:core:2.0:Fido2Device`).
pub(super) fn fido2_device_schema() -> Schema {
    Schema {
        id: super::FIDO2_DEVICE_SCHEMA.to_string(),
        name: "Fido2Device".to_string(),
        description: "FIDO 2.0 (WebAuthn) device".to_string(),
        attributes: vec![
            string("userId")
                .case_exact()
                .immutable()
                .desc("Identifier of the user owning this device."),
            attr("creationDate", AttrType::DateTime)
                .immutable()
                .desc("When the device was enrolled."),
            attr("counter", AttrType::Integer)
                .immutable()
                .desc("Signature counter."),
            string("status")
                .canonical(&["registered", "pending"])
                .desc("Registration status."),
            string("displayName").desc("Name of the device, for display."),
        ],
    }
}

fn device_resource_type(
    kind: ResourceKind,
    endpoint: &str,
    schema: &str,
    desc: &str,
) -> ResourceTypeDef {
    let name = kind.as_str();
    ResourceTypeDef {
        kind,
        id: name.to_string(),
        name: name.to_string(),
        endpoint: endpoint.to_string(),
        description: desc.to_string(),
        schema: schema.to_string(),
        schema_extensions: Vec::new(),
    }
}

pub(super) fn fido_device_resource_type() -> ResourceTypeDef {
    device_resource_type(
        ResourceKind::FidoDevice,
        "/FidoDevices",
        super::FIDO_DEVICE_SCHEMA,
        "FIDO U2F device",
    )
}

pub(super) fn fido2_device_resource_type() -> ResourceTypeDef {
    device_resource_type(
        ResourceKind::Fido2Device,
        "/Fido2Devices",
        super::FIDO2_DEVICE_SCHEMA,
        "FIDO 2.0 device",
    )
}

pub(super) fn user_resource_type() -> ResourceTypeDef {
    ResourceTypeDef {
        kind: ResourceKind::User,
        id: "User".to_string(),
        name: "User".to_string(),
        endpoint: "/Users".to_string(),
        description: "User Account".to_string(),
        schema: USER_SCHEMA.to_string(),
        schema_extensions: vec![SchemaExtensionRef {
            schema: ENTERPRISE_USER_SCHEMA.to_string(),
            required: false,
        }],
    }
}

pub(super) fn group_resource_type() -> ResourceTypeDef {
    ResourceTypeDef {
        kind: ResourceKind::Group,
        id: "Group".to_string(),
        name: "Group".to_string(),
        endpoint: "/Groups".to_string(),
        description: "Group".to_string(),
        schema: GROUP_SCHEMA.to_string(),
        schema_extensions: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(attrs: &[AttributeDef], f: &mut dyn FnMut(&AttributeDef)) {
        for a in attrs {
            f(a);
            walk(&a.sub_attributes, f);
        }
    }

    #[test]
    fn complex_has_subs_and_references_have_types() {
        let mut all = common_attributes();
        for s in [user_schema(), group_schema(), enterprise_user_schema()] {
            all.extend(s.attributes);
        }
        walk(&all, &mut |a| {
            assert_eq!(
                a.ty == AttrType::Complex,
                !a.sub_attributes.is_empty(),
                "{}",
                a.name
            );
            if a.ty == AttrType::Reference {
                assert!(!a.reference_types.is_empty(), "{}", a.name);
            }
            assert!(!a.description.is_empty(), "{}", a.name);
            // SCIM forbids complex sub-attributes (§2.3.8).
            for s in &a.sub_attributes {
                assert_ne!(s.ty, AttrType::Complex);
            }
        });
    }

    #[test]
    fn key_characteristics() {
        let u = user_schema();
        let un = u.attr("username").map(|a| (a.required, a.uniqueness));
        assert_eq!(un, Some((true, Uniqueness::Server)));
        let pw = u.attr("password").map(|a| (a.mutability, a.returned));
        assert_eq!(pw, Some((Mutability::WriteOnly, Returned::Never)));
        let groups = u.attr("groups");
        assert_eq!(groups.map(|g| g.mutability), Some(Mutability::ReadOnly));
        let g = group_schema();
        assert_eq!(g.attr("displayName").map(|a| a.required), Some(true));
        let ids = common_attributes();
        assert_eq!(ids[0].returned, Returned::Always);
    }
}
