//! What moved between two builds of one wheel, read from the fingerprints their jobs were
//! recorded with (every input that changes a build's bytes is in one): the sdist, a build
//! dependency (its version, or its bytes at the same version), the image or interpreter, a
//! setting. Nothing moved and different bytes is the other answer: the build is not
//! reproducible.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One input that differs between the two builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MovedInput {
    /// `sdist`, `build-dependency`, `build-backend`, `image`, `interpreter`,
    /// `interpreter-version`, `backend`, `setting`, `build-path`, `package-settings`, `crates`.
    pub input: &'static str,
    /// The dependency or setting, where the kind has several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its value in the first build and in the second (`absent` when one has none).
    pub a: String,
    pub b: String,
}

impl MovedInput {
    /// `build dependency setuptools 70.0.0 → 71.1.0`.
    pub fn describe(&self) -> String {
        let what = self.input.replace('-', " ");
        match &self.name {
            Some(name) => format!("{what} {name} {} → {}", self.a, self.b),
            None => format!("{what} {} → {}", self.a, self.b),
        }
    }
}

const ABSENT: &str = "absent";

/// The inputs that differ between two recorded fingerprints (JSON), most telling first: the
/// sdist, then the build environment, then where and how it was built. `None` when either
/// cannot be read (a run recorded before fingerprints, or a foreign one).
pub fn moved_inputs(a: &str, b: &str) -> Option<Vec<MovedInput>> {
    let (a, b): (Value, Value) = (serde_json::from_str(a).ok()?, serde_json::from_str(b).ok()?);
    let (a, b) = (a.as_object()?, b.as_object()?);
    let mut moved = Vec::new();
    let text = |v: Option<&Value>| match v {
        None | Some(Value::Null) => ABSENT.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let mut plain = |input: &'static str, key: &str, short: bool| {
        let (va, vb) = (text(a.get(key)), text(b.get(key)));
        if va != vb {
            let cut = |s: String| match short && s.len() > 12 {
                true => s[..12].to_string(),
                false => s,
            };
            moved.push(MovedInput {
                input,
                name: None,
                a: cut(va),
                b: cut(vb),
            });
        }
    };
    plain("sdist", "sdist_sha256", true);
    plain("build-backend", "build_backend", false);
    let env = |side: &serde_json::Map<String, Value>| -> BTreeMap<String, (String, String)> {
        side.get("build_env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|w| {
                Some((
                    w.get("name")?.as_str()?.to_string(),
                    (
                        w.get("version")?.as_str()?.to_string(),
                        w.get("sha256")?.as_str()?.to_string(),
                    ),
                ))
            })
            .collect()
    };
    let (ea, eb) = (env(a), env(b));
    let names: std::collections::BTreeSet<&String> = ea.keys().chain(eb.keys()).collect();
    for name in names {
        let (va, vb) = (ea.get(name), eb.get(name));
        if va == vb {
            continue;
        }
        let shown =
            |v: Option<&(String, String)>, other: Option<&(String, String)>| match (v, other) {
                (None, _) => ABSENT.to_string(),
                // The same version built to other bytes: the hash tells them apart.
                (Some((version, sha)), Some((other_version, _))) if version == other_version => {
                    format!("{version} (sha256 {})", &sha[..sha.len().min(12)])
                }
                (Some((version, _)), _) => version.clone(),
            };
        moved.push(MovedInput {
            input: "build-dependency",
            name: Some(name.clone()),
            a: shown(va, vb),
            b: shown(vb, va),
        });
    }
    let runtime = match text(a.get("backend")).as_str() {
        "docker" => "image",
        _ => "interpreter",
    };
    let mut plain = |input: &'static str, key: &str, short: bool| {
        let (va, vb) = (text(a.get(key)), text(b.get(key)));
        if va != vb {
            // An image id is long and its head tells it apart; an interpreter's path is not.
            let cut = |s: String| match short && s.len() > 19 && !s.contains('/') {
                true => s[..19].to_string(),
                false => s,
            };
            moved.push(MovedInput {
                input,
                name: None,
                a: cut(va),
                b: cut(vb),
            });
        }
    };
    plain("backend", "backend", false);
    plain(runtime, "runtime", true);
    plain("interpreter-version", "interpreter_version", false);
    let settings = |side: &serde_json::Map<String, Value>| {
        side.get("settings")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (sa, sb) = (settings(a), settings(b));
    let keys: std::collections::BTreeSet<&String> = sa.keys().chain(sb.keys()).collect();
    for key in keys {
        let (va, vb) = (text(sa.get(key)), text(sb.get(key)));
        if va != vb {
            moved.push(MovedInput {
                input: "setting",
                name: Some(key.clone()),
                a: va,
                b: vb,
            });
        }
    }
    let mut plain = |input: &'static str, key: &str| {
        let (va, vb) = (text(a.get(key)), text(b.get(key)));
        if va != vb {
            moved.push(MovedInput {
                input,
                name: None,
                a: va,
                b: vb,
            });
        }
    };
    plain("build-path", "build_path");
    plain("package-settings", "recipe");
    plain("crates", "crates");
    Some(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fingerprint(env: Value, settings: Value) -> String {
        json!({
            "backend": "local",
            "runtime": "/usr/bin/python3.11",
            "interpreter_version": "3.11.2",
            "sdist_sha256": "a".repeat(64),
            "build_backend": "setuptools.build_meta",
            "build_env": env,
            "settings": settings,
            "build_path": "/tmp/rewheel-build/app-1.0",
        })
        .to_string()
    }

    #[test]
    fn a_bumped_build_dependency_is_named_with_both_versions() {
        let a = fingerprint(
            json!([{"name": "tool", "version": "1.0", "sha256": "1".repeat(64)}]),
            json!({"umask": 18}),
        );
        let b = fingerprint(
            json!([{"name": "tool", "version": "1.1", "sha256": "2".repeat(64)}]),
            json!({"umask": 18}),
        );
        let moved = moved_inputs(&a, &b).unwrap();
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_eq!(moved[0].describe(), "build dependency tool 1.0 → 1.1");
    }

    #[test]
    fn the_same_version_rebuilt_to_other_bytes_and_a_setting_are_told_apart() {
        let a = fingerprint(
            json!([{"name": "tool", "version": "1.0", "sha256": "1".repeat(64)}]),
            json!({"umask": 18}),
        );
        let b = fingerprint(
            json!([{"name": "tool", "version": "1.0", "sha256": "2".repeat(64)}, {"name": "extra", "version": "2.0", "sha256": "3".repeat(64)}]),
            json!({"umask": 2}),
        );
        let said: Vec<String> = moved_inputs(&a, &b)
            .unwrap()
            .iter()
            .map(MovedInput::describe)
            .collect();
        assert_eq!(
            said,
            [
                "build dependency extra absent → 2.0",
                "build dependency tool 1.0 (sha256 111111111111) → 1.0 (sha256 222222222222)",
                "setting umask 18 → 2",
            ]
        );
    }

    #[test]
    fn the_same_inputs_move_nothing_and_an_unreadable_fingerprint_says_nothing() {
        let a = fingerprint(json!([]), json!({}));
        assert_eq!(moved_inputs(&a, &a), Some(Vec::new()));
        assert_eq!(moved_inputs(&a, "not json"), None);
    }
}
