//! The command line: every flag and subcommand, parsed by clap.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "scim", version, about = "A command-line SCIM 2.0 client")]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Connection and output flags, accepted before or after the subcommand.
#[derive(Args, Debug, Default, Clone)]
#[command(next_help_heading = "Connection and output (before or after the subcommand)")]
pub(crate) struct ConnArgs {
    /// SCIM base URL, e.g. http://127.0.0.1:8080/scim/v2
    #[arg(long, global = true, env = "SCIM_URL")]
    pub(crate) url: Option<String>,
    /// A bearer token to send as is.
    #[arg(long, global = true)]
    pub(crate) token: Option<String>,
    /// OAuth client id (client_credentials grant).
    #[arg(long, global = true)]
    pub(crate) client_id: Option<String>,
    /// File holding the OAuth client secret.
    #[arg(long, global = true)]
    pub(crate) client_secret_file: Option<PathBuf>,
    /// Environment variable holding the OAuth client secret.
    #[arg(long, global = true)]
    pub(crate) client_secret_env: Option<String>,
    /// Token endpoint (default: discovered from the server's openid-configuration).
    #[arg(long, global = true)]
    pub(crate) token_url: Option<String>,
    /// Scope to ask for (repeatable, or space-separated).
    #[arg(long = "scope", global = true)]
    pub(crate) scopes: Vec<String>,
    /// Profile of ~/.config/scim/config.toml (or $SCIM_CONFIG) to use.
    #[arg(long, global = true, env = "SCIM_PROFILE")]
    pub(crate) profile: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum)]
    pub(crate) output: Option<OutputFormat>,
    /// Extra header for every request, 'Name: value' (repeatable).
    #[arg(long = "header", global = true)]
    pub(crate) headers: Vec<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OutputFormat {
    Table,
    Json,
    Jsonl,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Users: list, get, create, replace, patch, delete.
    Users {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Groups: list, get, create, replace, patch, delete, members.
    Groups {
        #[command(subcommand)]
        action: GroupAction,
    },
    /// FIDO devices: list, get, delete.
    Devices {
        #[command(subcommand)]
        action: DeviceAction,
    },
    /// The server's capabilities and resource types.
    Discover,
    /// Write users and/or groups to a JSON-lines or CSV file.
    Export(ExportArgs),
    /// Create users and groups from JSON-lines or CSV files.
    Import(ImportArgs),
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct ListArgs {
    /// SCIM filter, e.g. 'userName sw "b"'.
    #[arg(long)]
    pub(crate) filter: Option<String>,
    #[arg(long)]
    pub(crate) sort_by: Option<String>,
    #[arg(long, value_enum)]
    pub(crate) sort_order: Option<SortOrderArg>,
    /// Attributes to return, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(crate) attributes: Vec<String>,
    /// Page size (without --all: how many to show).
    #[arg(long)]
    pub(crate) count: Option<u32>,
    /// Every page, not only the first.
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SortOrderArg {
    Ascending,
    Descending,
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct PatchArgs {
    /// A PatchOp JSON body (or just its Operations array).
    #[arg(long, conflicts_with_all = ["replace", "add", "remove"])]
    pub(crate) file: Option<PathBuf>,
    /// PATH=VALUE to replace (repeatable); VALUE is JSON if it is true, false,
    /// null, a quoted string, an object or an array, else a string.
    #[arg(long)]
    pub(crate) replace: Vec<String>,
    /// PATH=VALUE to add (repeatable).
    #[arg(long)]
    pub(crate) add: Vec<String>,
    /// PATH to remove (repeatable).
    #[arg(long)]
    pub(crate) remove: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum UserAction {
    List(ListArgs),
    Get {
        id: String,
    },
    Create(CreateUserArgs),
    Replace {
        id: String,
        #[arg(long)]
        file: PathBuf,
    },
    Patch {
        id: String,
        #[command(flatten)]
        patch: PatchArgs,
    },
    Delete {
        id: String,
    },
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct CreateUserArgs {
    /// The whole user as a JSON file.
    #[arg(long, conflicts_with_all = ["user_name", "given_name", "family_name", "email", "password_file"])]
    pub(crate) file: Option<PathBuf>,
    #[arg(long, required_unless_present = "file")]
    pub(crate) user_name: Option<String>,
    #[arg(long)]
    pub(crate) given_name: Option<String>,
    #[arg(long)]
    pub(crate) family_name: Option<String>,
    /// Work email (repeatable).
    #[arg(long)]
    pub(crate) email: Vec<String>,
    /// File holding the initial password.
    #[arg(long)]
    pub(crate) password_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum GroupAction {
    List(ListArgs),
    Get {
        id: String,
    },
    Create(CreateGroupArgs),
    Replace {
        id: String,
        #[arg(long)]
        file: PathBuf,
    },
    Patch {
        id: String,
        #[command(flatten)]
        patch: PatchArgs,
    },
    Delete {
        id: String,
    },
    /// Add or remove members.
    Members {
        #[command(subcommand)]
        action: MemberAction,
    },
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct CreateGroupArgs {
    /// The whole group as a JSON file.
    #[arg(long, conflicts_with_all = ["display_name", "member"])]
    pub(crate) file: Option<PathBuf>,
    #[arg(long, required_unless_present = "file")]
    pub(crate) display_name: Option<String>,
    /// Member user, by id or userName (repeatable).
    #[arg(long)]
    pub(crate) member: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum MemberAction {
    /// GROUP (id or displayName) and USERs (ids or userNames).
    Add {
        group: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
    Remove {
        group: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum DeviceAction {
    List {
        #[command(flatten)]
        list: ListArgs,
        /// Only this user's devices (Gluu's userId parameter).
        #[arg(long)]
        user_id: Option<String>,
        /// FIDO 2 devices instead of FIDO U2F ones.
        #[arg(long)]
        fido2: bool,
    },
    Get {
        id: String,
        #[arg(long)]
        fido2: bool,
    },
    Delete {
        id: String,
        #[arg(long)]
        fido2: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum ResourceSel {
    Users,
    Groups,
    #[default]
    All,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileFormat {
    Jsonl,
    Csv,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct ExportArgs {
    /// Output file (CSV with --resource all: groups go to <stem>.groups.csv beside it).
    #[arg(long)]
    pub(crate) out: PathBuf,
    #[arg(long, value_enum, default_value_t = ResourceSel::All)]
    pub(crate) resource: ResourceSel,
    /// Default: from the file name (.csv is CSV), else jsonl.
    #[arg(long, value_enum)]
    pub(crate) format: Option<FileFormat>,
    /// SCIM filter applied to each resource type exported.
    #[arg(long)]
    pub(crate) filter: Option<String>,
    /// CSV columns of users, as a CSV header row of attribute paths
    /// (default: the common core and enterprise attributes).
    #[arg(long)]
    pub(crate) columns: Option<String>,
    /// Page size asked of the server (default: the server's largest).
    #[arg(long)]
    pub(crate) page_size: Option<u32>,
    /// Users searches run at once, each over its own range of meta.created
    /// (the server must sort and filter on it); lines then come in no set order.
    #[arg(long, default_value_t = 1)]
    pub(crate) concurrency: u32,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct ImportArgs {
    /// Input file (repeatable; users files are imported before groups files).
    #[arg(long = "in", required = true)]
    pub(crate) input: Vec<PathBuf>,
    /// Default: from the file name (.csv is CSV), else jsonl.
    #[arg(long, value_enum)]
    pub(crate) format: Option<FileFormat>,
    /// Requests (or Bulk requests) in flight at once.
    #[arg(long, default_value_t = 8)]
    pub(crate) concurrency: usize,
    /// Send the records through /Bulk.
    #[arg(long)]
    pub(crate) bulk: bool,
    /// Continue an interrupted import: skip what its state file says is done,
    /// and take a record the server already has as done.
    #[arg(long)]
    pub(crate) resume: bool,
    /// Failure report (CSV: line,status,scimType,detail); default <input>.failures.csv.
    #[arg(long)]
    pub(crate) report: Option<PathBuf>,
}
