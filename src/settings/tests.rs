//! The settings checks as an operator meets them: defaults, env overrides, and
//! the errors a bad value gets.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
    Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

#[test]
fn defaults_load_and_are_embedded_mode() {
    let s = Settings::load_with_env(None, env(&[])).unwrap();
    assert_eq!(s.records_url(), "sqlite://clipforge-data/clipforge.db");
    assert_eq!(s.queue_url(), "sqlite://clipforge-data/queue.db");
    assert_eq!(s.storage.retention_days, 14);
}

#[test]
fn env_overrides_nested_keys() {
    let s = Settings::load_with_env(
        None,
        env(&[
            ("CLIPFORGE__QUEUE__URL", "redis://127.0.0.1:6379"),
            ("CLIPFORGE__MEDIA__CRF", "30"),
            ("CLIPFORGE__PROVIDERS__VOICE__DEFAULT_VOICE", "en-gb"),
        ]),
    )
    .unwrap();
    assert_eq!(s.queue_url(), "redis://127.0.0.1:6379");
    assert_eq!(s.media.crf, 30);
    let VoiceProviderSettings::Espeak(EspeakSettings { default_voice, .. }) = s.providers.voice else {
        panic!("not espeak")
    };
    assert_eq!(default_voice, "en-gb");
}

#[test]
fn server_url_allowed_hosts_and_timeouts_are_checked() {
    let s = Settings::load_with_env(None, env(&[])).unwrap();
    assert_eq!((s.server.header_timeout_secs, s.server.idle_timeout_secs, s.server.body_timeout_secs), (10, 60, 30));
    assert_eq!(s.server.events_poll(), std::time::Duration::from_millis(500));
    let s = Settings::load_with_env(None, env(&[("CLIPFORGE__SERVER__ALLOWED_HOSTS", " Clips.Internal, [::1] ,")]))
        .unwrap();
    assert_eq!(s.server.allowed_host_list(), ["clips.internal", "[::1]"]);
    for (key, value, named) in [
        ("CLIPFORGE__SERVER__URL", "clips.example.com", "server.url"),
        ("CLIPFORGE__SERVER__URL", "https://", "server.url"),
        ("CLIPFORGE__SERVER__ALLOWED_HOSTS", "https://clips.example.com", "server.allowed_hosts"),
        ("CLIPFORGE__SERVER__ALLOWED_HOSTS", "a.example:8080", "server.allowed_hosts"),
        ("CLIPFORGE__SERVER__HEADER_TIMEOUT_SECS", "0", "server.header_timeout_secs"),
        ("CLIPFORGE__SERVER__IDLE_TIMEOUT_SECS", "0", "server.idle_timeout_secs"),
        ("CLIPFORGE__SERVER__BODY_TIMEOUT_SECS", "4000", "server.body_timeout_secs"),
        ("CLIPFORGE__SERVER__EVENTS_POLL_MS", "10", "server.events_poll_ms"),
        ("CLIPFORGE__SERVER__GROUP_COMMIT_JOBS", "0", "server.group_commit_jobs"),
        ("CLIPFORGE__SERVER__GROUP_COMMIT_JOBS", "5000", "server.group_commit_jobs"),
        ("CLIPFORGE__MEDIA__X264_PARAMS", "keyint=600", "media.x264_params"),
    ] {
        let err = Settings::load_with_env(None, env(&[(key, value)])).unwrap_err().to_string();
        assert!(err.contains(named) && err.contains(key), "{key}={value}: {err}");
    }
}

#[test]
fn a_bad_value_names_key_env_and_allowed() {
    let err = Settings::load_with_env(None, env(&[("CLIPFORGE__MEDIA__PRESET", "placebo")])).unwrap_err().to_string();
    assert!(err.contains("media.preset"), "{err}");
    assert!(err.contains("CLIPFORGE__MEDIA__PRESET"), "{err}");
    assert!(err.contains("veryfast"), "{err}");
}

#[test]
fn cost_limits_load_and_must_agree_with_each_other() {
    let s = Settings::load_with_env(None, env(&[])).unwrap();
    let spec = s.limits.spec();
    assert_eq!((spec.max_sentences, spec.max_narration_secs, spec.fastest_words_per_minute), (200, 180, 300));
    assert_eq!((s.limits.max_footage_segments, s.media.ffmpeg_threads), (32, 0), "0: set for the machine");
    for (key, value, names) in [
        ("CLIPFORGE__LIMITS__MAX_NARRATION_SECS", "120", "limits.max_target_secs"),
        ("CLIPFORGE__LIMITS__FASTEST_WORDS_PER_MINUTE", "150", "providers.voice.words_per_minute"),
        ("CLIPFORGE__LIMITS__MAX_FOOTAGE_SEGMENTS", "0", "1-500"),
        ("CLIPFORGE__MEDIA__FFMPEG_THREADS", "65", "1-64"),
    ] {
        let err = Settings::load_with_env(None, env(&[(key, value)])).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains(names), "{key}={value}: {err}");
    }
}

#[test]
fn a_wrongly_typed_value_names_the_key() {
    let err = Settings::load_with_env(None, env(&[("CLIPFORGE__MEDIA__CRF", "lots")])).unwrap_err().to_string();
    assert!(err.contains("crf"), "{err}");
}

#[test]
fn an_unknown_queue_scheme_is_refused() {
    let err = Settings::load_with_env(None, env(&[("CLIPFORGE__QUEUE__URL", "amqp://x")])).unwrap_err().to_string();
    assert!(err.contains("CLIPFORGE__QUEUE__URL"), "{err}");
}

#[test]
fn a_real_provider_without_a_key_fails_at_start_and_names_the_variable() {
    let err = Settings::load_with_env(
        None,
        env(&[("CLIPFORGE__PROVIDERS__SCRIPT__TYPE", "openrouter"), ("CLIPFORGE__PROVIDERS__SCRIPT__MODEL", "x/y")]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("CLIPFORGE__PROVIDERS__SCRIPT__API_KEY") && err.contains("openrouter"), "{err}");
}

#[test]
fn a_real_provider_is_configured_by_env_alone_and_its_key_stays_secret() {
    let s = Settings::load_with_env(
        None,
        env(&[
            ("CLIPFORGE__PROVIDERS__FOOTAGE__TYPE", "pexels"),
            ("CLIPFORGE__PROVIDERS__FOOTAGE__API_KEY", "pexels-secret-123"),
        ]),
    )
    .unwrap();
    let FootageProviderSettings::Pexels(p) = &s.providers.footage else { panic!("not pexels") };
    assert_eq!(p.base_url, "https://api.pexels.com");
    assert!(!format!("{s:?}").contains("pexels-secret-123"), "Debug output shows the key");
}

#[test]
fn the_production_example_loads_as_redis_and_postgres() {
    let s = Settings::load_with_env(Some(Path::new("config/production.example.toml")), env(&[])).unwrap();
    assert!(s.queue_url().starts_with("redis://"));
    assert!(s.records_url().starts_with("postgres://"));
    assert!(s.auth.require_keys, "it listens on 0.0.0.0, so it asks for keys");
}

#[test]
fn env_var_names_follow_the_key() {
    assert_eq!(env_var_for("providers.voice.type"), "CLIPFORGE__PROVIDERS__VOICE__TYPE");
}

#[test]
fn listening_beyond_loopback_without_keys_is_refused_and_says_why() {
    let open = [("CLIPFORGE__SERVER__LISTEN", "0.0.0.0:8080")];
    let err = Settings::load_with_env(None, env(&open)).unwrap_err().to_string();
    assert!(err.contains("auth.require_keys") && err.contains("CLIPFORGE__AUTH__REQUIRE_KEYS"), "{err}");
    assert!(err.contains("0.0.0.0:8080") && err.contains("anyone who can reach the port"), "{err}");
    let with_keys = [open[0], ("CLIPFORGE__AUTH__REQUIRE_KEYS", "true")];
    assert!(Settings::load_with_env(None, env(&with_keys)).unwrap().auth.require_keys);
    let behind_gateway = [open[0], ("CLIPFORGE__AUTH__ALLOW_OPEN_NON_LOOPBACK", "true")];
    assert!(Settings::load_with_env(None, env(&behind_gateway)).is_ok());
    for loopback in ["127.0.0.1:0", "[::1]:8080"] {
        let s = Settings::load_with_env(None, env(&[("CLIPFORGE__SERVER__LISTEN", loopback)])).unwrap();
        assert!(!s.auth.require_keys, "loopback stays zero-setup");
    }
}

#[test]
fn the_rate_limit_must_be_positive() {
    let err =
        Settings::load_with_env(None, env(&[("CLIPFORGE__AUTH__REQUESTS_PER_MINUTE", "0")])).unwrap_err().to_string();
    assert!(err.contains("CLIPFORGE__AUTH__REQUESTS_PER_MINUTE") && err.contains("1-100000"), "{err}");
}
