//! Walks every key of the settings tree, as the defaults and a fully switched-on
//! configuration have it, and holds three promises:
//!
//! - a bad value of a key with a rule is refused naming exactly that key and
//!   its env var, and any other refusal a value of it causes says how it is
//!   involved (a rule that spans keys names the other key in its text);
//! - `config/default.toml` documents exactly the keys `Settings` has;
//! - a provider default stated in `config/default.toml` is the one in the code.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::*;

thread_local! {
    /// The keys the checks of this thread have looked at since the last [`take_rules`].
    static RULES: RefCell<BTreeSet<String>> = const { RefCell::new(BTreeSet::new()) };
}

/// Called by every check: its key has a rule.
pub(super) fn note_rule(key: Key) {
    RULES.with(|r| r.borrow_mut().insert(key.to_string()));
}

fn take_rules() -> BTreeSet<String> {
    RULES.with(|r| std::mem::take(&mut *r.borrow_mut()))
}

/// Every vendor, store and target switched on, so the keys and rules of each
/// provider type are in the tree.
const SWITCHED_ON: &[(&str, &str)] = &[
    ("providers.script.type", "openrouter"),
    ("providers.script.api_key", "sk-or-test"),
    ("providers.voice.type", "elevenlabs"),
    ("providers.voice.api_key", "xi-test"),
    ("providers.footage.type", "pexels"),
    ("providers.footage.api_key", "pexels-test"),
    ("providers.ai_video.type", "runway"),
    ("providers.ai_video.api_key", "runway-test"),
    ("storage.type", "s3"),
    ("storage.bucket", "clips"),
    ("tiktok.client_key", "ck"),
    ("tiktok.client_secret", "cs"),
    ("notify.telegram_chat_id", "@clipforge_team"),
    ("telegram.bot_token", "bot-test"),
    ("notify.webhook_url", "https://hooks.example.com/clips"),
    ("webhooks.secret", "hook-secret"),
    ("server.listen", "0.0.0.0:8080"),
    ("auth.require_keys", "true"),
];

/// Loads the defaults with `keys` set through their env vars; a later pair wins.
fn load(keys: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    let mut vars = BTreeMap::new();
    for (key, value) in keys {
        vars.insert(env_var_for(key), value.to_string());
    }
    Settings::load_with_env(None, Some(vars.into_iter().collect()))
}

/// Every leaf of `tree` by its dotted key.
fn flatten(tree: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match tree {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(v, &key, out);
            }
        }
        leaf => {
            out.insert(prefix.to_string(), leaf.clone());
        }
    }
}

fn keys_of(s: &Settings) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    flatten(&serde_json::to_value(s).expect("settings serialize"), "", &mut out);
    out
}

/// Values of a key's kind that some rule refuses: out of range, empty, not a
/// URL, not a name. Each key with a rule must be refused by at least one.
fn bad_values(default: &Value) -> &'static [&'static str] {
    match default {
        Value::Bool(_) => &["true", "false"],
        Value::Number(n) if n.is_f64() => &["-1.0", "0.0", "1000.0"],
        Value::Number(_) => &["0", "255", "65535", "99999999999"],
        _ => &["", "x", "a b,c:1", "0.0.0.0:8080"],
    }
}

#[test]
fn every_key_with_a_rule_names_itself_and_its_env_var_when_refused() {
    let mut rules = BTreeSet::new();
    let mut all_keys = BTreeSet::new();
    let mut named_itself = BTreeSet::new();
    let mut failures = Vec::new();
    for context in [&[][..], SWITCHED_ON] {
        take_rules();
        let base = load(context).unwrap_or_else(|e| panic!("context {context:?} loads: {e}"));
        rules.extend(take_rules());
        let keys = keys_of(&base);
        all_keys.extend(keys.keys().cloned());
        for (key, default) in &keys {
            let env = env_var_for(key);
            for bad in bad_values(default) {
                let mut set = context.to_vec();
                set.push((key.as_str(), *bad));
                let Err(err) = load(&set) else { continue };
                let SettingsError::Invalid { key: named, .. } = &err else { continue };
                let message = err.to_string();
                if named.to_string() == *key {
                    named_itself.insert(key.clone());
                    if named.env() != env || !message.contains(&format!("setting `{key}` (env {env})")) {
                        failures.push(format!("{key}={bad:?}: wrong env var: {message}"));
                    }
                } else if !message.contains(key.as_str()) {
                    failures.push(format!("{key}={bad:?} names `{named}` without saying why: {message}"));
                }
            }
        }
        take_rules();
    }
    for key in &rules {
        if !all_keys.contains(key) {
            failures.push(format!("a rule names `{key}`, which is no key of the settings tree"));
        } else if !named_itself.contains(key) {
            failures.push(format!("no bad value of `{key}` was refused under its own name"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(rules.len() >= 90, "only {} keys with rules were seen: {rules:?}", rules.len());
}

/// One line of a provider's key table in `config/default.toml`, e.g.
/// `#     base_url     default "https://api.pexels.com"`.
#[derive(Debug)]
struct Documented {
    section: String,
    variant: String,
    key: String,
    default: Option<Value>,
}

/// What `config/default.toml` documents: its own keys, the keys its comments
/// name by env var, and the provider types' key tables.
fn documented() -> (BTreeSet<String>, Vec<Documented>) {
    let tree: Value = config::Config::builder()
        .add_source(config::File::from_str(DEFAULT_TOML, config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize())
        .expect("default.toml parses");
    let mut keys = BTreeMap::new();
    flatten(&tree, "", &mut keys);
    let mut keys: BTreeSet<String> = keys.into_keys().collect();
    let prefix = format!("{ENV_PREFIX}__");
    let mut rest = DEFAULT_TOML;
    while let Some(at) = rest.find(&prefix) {
        let name: String =
            rest[at..].chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
        rest = &rest[at + name.len()..];
        let path = &name[prefix.len()..];
        if path.ends_with('_') || path == "SECTION__KEY" {
            continue; // a pattern such as CLIPFORGE__PROVIDERS__VOICE__<KEY>
        }
        keys.insert(path.to_ascii_lowercase().replace("__", "."));
    }
    let (mut section, mut variant, mut table) = (String::new(), String::new(), Vec::new());
    for line in DEFAULT_TOML.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some(name) = line.strip_prefix("#   \"").and_then(|l| l.split('"').next()) {
            variant = name.to_string();
        } else if let Some(entry) = line.strip_prefix("#     ")
            && entry.starts_with(|c: char| c.is_ascii_lowercase())
        {
            let (key, text) = entry.split_once(' ').expect("a key table line has text after the key");
            let default = text.trim_start().strip_prefix("default ").map(parse_default);
            keys.insert(format!("{section}.{key}"));
            table.push(Documented { section: section.clone(), variant: variant.clone(), key: key.into(), default });
        }
    }
    (keys, table)
}

/// `"text"` → a string, `4.0` / `2000` → a number, `true` → a bool.
fn parse_default(text: &str) -> Value {
    if let Some(quoted) = text.strip_prefix('"') {
        return Value::String(quoted.split('"').next().unwrap_or_default().into());
    }
    let token = text.split(|c: char| c.is_whitespace() || c == ';' || c == ',').next().unwrap_or_default();
    match token {
        "true" | "false" => Value::Bool(token == "true"),
        number => serde_json::json!(number.parse::<f64>().unwrap_or_else(|_| panic!("default {text:?}"))),
    }
}

#[test]
fn default_toml_documents_exactly_the_keys_settings_has() {
    let mut settings_keys = BTreeSet::new();
    for context in [&[][..], SWITCHED_ON] {
        settings_keys.extend(keys_of(&load(context).unwrap()).into_keys());
    }
    let (documented, _) = documented();
    let undocumented: Vec<_> = settings_keys.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&settings_keys).collect();
    assert!(undocumented.is_empty(), "keys missing from config/default.toml: {undocumented:?}");
    assert!(unknown.is_empty(), "config/default.toml documents keys Settings does not have: {unknown:?}");
}

#[test]
fn provider_defaults_stated_in_default_toml_are_the_ones_in_the_code() {
    let (_, table) = documented();
    let mut variants: BTreeMap<(String, String), Vec<&Documented>> = BTreeMap::new();
    for line in &table {
        variants.entry((line.section.clone(), line.variant.clone())).or_default().push(line);
    }
    assert!(variants.len() >= 4, "{variants:?}");
    for ((section, variant), lines) in variants {
        let mut set = vec![(format!("{section}.type"), variant.clone())];
        if lines.iter().any(|l| l.key == "api_key") {
            set.push((format!("{section}.api_key"), "test-key".into()));
        }
        let set: Vec<(&str, &str)> = set.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let loaded = keys_of(&load(&set).unwrap_or_else(|e| panic!("{section} type {variant}: {e}")));
        let in_code: BTreeSet<&str> =
            loaded.keys().filter_map(|k| k.strip_prefix(&format!("{section}."))).filter(|k| *k != "type").collect();
        let in_table: BTreeSet<&str> = lines.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(in_table, in_code, "the key table of {section} type {variant} in config/default.toml");
        for line in lines {
            let Some(stated) = &line.default else { continue };
            let actual = &loaded[&format!("{section}.{}", line.key)];
            let agree = match (stated, actual) {
                (Value::Number(a), Value::Number(b)) => (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-6,
                (a, b) => a == b,
            };
            assert!(agree, "{section}.{} ({variant}): config/default.toml says {stated}, the code {actual}", line.key);
        }
    }
}
