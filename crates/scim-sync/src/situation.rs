//! Situations, actions and the default policy table of reconciliation (PingIDM /
//! OpenIDM terms): what state one object pair is in, and what to do about it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Situation {
    /// Source qualifies, link exists, linked target exists.
    Confirmed,
    /// No link, exactly one target correlated, and it is not linked elsewhere.
    Found,
    /// No link, the one correlated target is linked to another source.
    FoundAlreadyLinked,
    /// No link, no target correlated.
    Absent,
    /// No link, several targets correlated.
    Ambiguous,
    /// Link exists, the linked target is gone.
    Missing,
    /// Source no longer qualifies (sourceFilter) but its link and target exist.
    Unqualified,
    /// Source does not qualify and has no linked target: out of scope.
    SourceIgnored,
    /// Target out of scope.
    TargetIgnored,
    /// Target phase: a target no link points at.
    Unassigned,
    /// Target phase: a linked target whose source is gone.
    SourceMissing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    Create,
    Update,
    Delete,
    Link,
    Unlink,
    Ignore,
    Exception,
    Report,
    NoReport,
}

impl Situation {
    pub const ALL: [Situation; 11] = [
        Situation::Confirmed,
        Situation::Found,
        Situation::FoundAlreadyLinked,
        Situation::Absent,
        Situation::Ambiguous,
        Situation::Missing,
        Situation::Unqualified,
        Situation::SourceIgnored,
        Situation::TargetIgnored,
        Situation::Unassigned,
        Situation::SourceMissing,
    ];

    /// The action taken when a mapping's policies do not name this situation.
    /// Where sync.md offers a choice, the cautious one is the default: nothing
    /// is deleted or created behind a broken link unless a policy asks for it.
    pub fn default_action(self) -> Action {
        match self {
            Situation::Confirmed => Action::Update,
            Situation::Found => Action::Link,
            Situation::Absent => Action::Create,
            Situation::Unqualified => Action::Delete,
            Situation::SourceIgnored | Situation::TargetIgnored => Action::Report,
            Situation::FoundAlreadyLinked
            | Situation::Ambiguous
            | Situation::Missing
            | Situation::Unassigned
            | Situation::SourceMissing => Action::Exception,
        }
    }

    /// Can `action` be carried out in this situation? CREATE needs no target to
    /// exist, UPDATE/DELETE/UNLINK need one (or a link), LINK needs exactly one
    /// unlinked correlated target. Reporting actions fit everywhere.
    pub fn allows(self, action: Action) -> bool {
        use Situation::*;
        match action {
            Action::Ignore | Action::Exception | Action::Report | Action::NoReport => true,
            Action::Create => matches!(self, Absent | Missing),
            Action::Link => matches!(self, Found),
            Action::Update => matches!(self, Confirmed | Found),
            Action::Delete => matches!(
                self,
                Confirmed | Found | Unqualified | Unassigned | SourceMissing
            ),
            Action::Unlink => matches!(self, Confirmed | Unqualified | Missing | SourceMissing),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Situation::Confirmed => "CONFIRMED",
            Situation::Found => "FOUND",
            Situation::FoundAlreadyLinked => "FOUND_ALREADY_LINKED",
            Situation::Absent => "ABSENT",
            Situation::Ambiguous => "AMBIGUOUS",
            Situation::Missing => "MISSING",
            Situation::Unqualified => "UNQUALIFIED",
            Situation::SourceIgnored => "SOURCE_IGNORED",
            Situation::TargetIgnored => "TARGET_IGNORED",
            Situation::Unassigned => "UNASSIGNED",
            Situation::SourceMissing => "SOURCE_MISSING",
        }
    }

    pub fn parse(name: &str) -> Option<Situation> {
        Situation::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl Action {
    pub const ALL: [Action; 9] = [
        Action::Create,
        Action::Update,
        Action::Delete,
        Action::Link,
        Action::Unlink,
        Action::Ignore,
        Action::Exception,
        Action::Report,
        Action::NoReport,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "CREATE",
            Action::Update => "UPDATE",
            Action::Delete => "DELETE",
            Action::Link => "LINK",
            Action::Unlink => "UNLINK",
            Action::Ignore => "IGNORE",
            Action::Exception => "EXCEPTION",
            Action::Report => "REPORT",
            Action::NoReport => "NOREPORT",
        }
    }

    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

impl fmt::Display for Situation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mapping's situation → action table: its own entries over the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policies {
    overrides: BTreeMap<Situation, Action>,
}

impl Policies {
    /// Refuses an action the situation cannot carry out, naming both.
    pub fn set(&mut self, situation: Situation, action: Action) -> Result<(), String> {
        if !situation.allows(action) {
            return Err(format!("{action} cannot be done in situation {situation}"));
        }
        self.overrides.insert(situation, action);
        Ok(())
    }

    pub fn action_for(&self, situation: Situation) -> Action {
        self.overrides
            .get(&situation)
            .copied()
            .unwrap_or_else(|| situation.default_action())
    }
}

/// A target that a correlation query matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correlated {
    pub target_id: String,
    /// The target already has a link to a different source.
    pub linked_elsewhere: bool,
}

/// What the source phase knows about one source object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFacts {
    /// The source passes the mapping's sourceFilter (true without one).
    pub qualifies: bool,
    /// The target id the link table gives this source.
    pub linked_target: Option<String>,
    /// Whether that linked target still exists.
    pub linked_target_exists: bool,
    /// The targets correlation found; only looked at without a link.
    pub correlated: Vec<Correlated>,
}

/// The situation of one source object.
pub fn classify_source(facts: &SourceFacts) -> Situation {
    let linked = facts.linked_target.is_some();
    if !facts.qualifies {
        return if linked && facts.linked_target_exists {
            Situation::Unqualified
        } else {
            Situation::SourceIgnored
        };
    }
    if linked {
        return if facts.linked_target_exists {
            Situation::Confirmed
        } else {
            Situation::Missing
        };
    }
    match facts.correlated.as_slice() {
        [] => Situation::Absent,
        [one] if one.linked_elsewhere => Situation::FoundAlreadyLinked,
        [_] => Situation::Found,
        _ => Situation::Ambiguous,
    }
}

/// The situation of a target the source phase did not reach: with a link its
/// source is gone, without one nothing points at it.
pub fn classify_target(linked: bool) -> Situation {
    if linked {
        Situation::SourceMissing
    } else {
        Situation::Unassigned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(qualifies: bool, link: bool, exists: bool, correlated: &[bool]) -> SourceFacts {
        SourceFacts {
            qualifies,
            linked_target: link.then(|| "t".to_string()),
            linked_target_exists: exists,
            correlated: correlated
                .iter()
                .enumerate()
                .map(|(i, &elsewhere)| Correlated {
                    target_id: format!("c{i}"),
                    linked_elsewhere: elsewhere,
                })
                .collect(),
        }
    }

    #[test]
    fn source_situations_follow_the_table() {
        use Situation::*;
        let cases = [
            (facts(true, true, true, &[]), Confirmed),
            (facts(true, true, false, &[]), Missing),
            (facts(true, false, false, &[]), Absent),
            (facts(true, false, false, &[false]), Found),
            (facts(true, false, false, &[true]), FoundAlreadyLinked),
            (facts(true, false, false, &[false, false]), Ambiguous),
            (facts(false, true, true, &[]), Unqualified),
            (facts(false, true, false, &[]), SourceIgnored),
            (facts(false, false, false, &[false]), SourceIgnored),
            // A link wins over correlation: renames stay CONFIRMED.
            (facts(true, true, true, &[false, false]), Confirmed),
        ];
        for (f, want) in cases {
            assert_eq!(classify_source(&f), want, "{f:?}");
        }
        assert_eq!(classify_target(true), SourceMissing);
        assert_eq!(classify_target(false), Unassigned);
    }

    #[test]
    fn defaults_are_the_cautious_column_of_the_table() {
        use Situation::*;
        assert_eq!(Confirmed.default_action(), Action::Update);
        assert_eq!(Found.default_action(), Action::Link);
        assert_eq!(Absent.default_action(), Action::Create);
        assert_eq!(Missing.default_action(), Action::Exception);
        assert_eq!(Unqualified.default_action(), Action::Delete);
        assert_eq!(SourceIgnored.default_action(), Action::Report);
        assert_eq!(SourceMissing.default_action(), Action::Exception);
        for s in Situation::ALL {
            assert!(s.allows(s.default_action()), "{s}");
        }
    }

    #[test]
    fn policies_override_defaults_and_refuse_impossible_actions() {
        let mut p = Policies::default();
        p.set(Situation::Missing, Action::Create).unwrap();
        p.set(Situation::SourceMissing, Action::Delete).unwrap();
        assert_eq!(p.action_for(Situation::Missing), Action::Create);
        assert_eq!(p.action_for(Situation::SourceMissing), Action::Delete);
        assert_eq!(p.action_for(Situation::Absent), Action::Create);
        let e = p.set(Situation::Confirmed, Action::Create).unwrap_err();
        assert!(e.contains("CREATE") && e.contains("CONFIRMED"), "{e}");
        assert!(p.set(Situation::Absent, Action::Link).is_err());
    }

    #[test]
    fn names_round_trip() {
        for s in Situation::ALL {
            assert_eq!(Situation::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
    }
}
