//! `clipforge keys`: make, list and revoke API keys, on the record store directly.
//!
//! A new key is printed once, alone on stdout, so `KEY=$(clipforge keys create …)`
//! captures it; everything said about it goes to stderr. Only its hash is stored.

use std::process::ExitCode;

use secrecy::ExposeSecret;

use super::{KeyTargets, KeysCommand, exit};
use crate::domain::NotifyRequest;
use crate::settings::{Settings, env_var_for};
use crate::store::records::{NewApiKey, Scope};

pub async fn run(settings: Settings, command: KeysCommand) -> ExitCode {
    let records = match crate::store::records::connect(&settings.records_url()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::UNREACHABLE);
        }
    };
    let result = match command {
        KeysCommand::Create { name, scopes, notify } => {
            let name = name.trim();
            if let Err(why) = NewApiKey::check_name(name) {
                eprintln!("error: --name: {why}");
                return ExitCode::from(exit::USAGE);
            }
            let scopes = match Scope::parse_list(&scopes) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: --scopes: {e}");
                    return ExitCode::from(exit::USAGE);
                }
            };
            let notify = match targets(notify) {
                Ok(n) => n,
                Err(code) => return code,
            };
            let (key, mut new) = NewApiKey::generate(name, scopes);
            new.notify = notify;
            records.create_api_key(&new).await.map(|created| {
                println!("{}", key.expose_secret());
                eprintln!(
                    "created API key {} ({}) with scopes {}. It is shown only this once: store it now. \
                     Send it as `Authorization: Bearer <key>`.",
                    created.id,
                    created.name,
                    Scope::join(&created.scopes)
                );
                if !settings.auth.require_keys {
                    eprintln!(
                        "note: auth.require_keys is false, so the API does not ask for keys yet; set {}=true",
                        env_var_for("auth.require_keys")
                    );
                }
                ExitCode::SUCCESS
            })
        }
        KeysCommand::List => records.list_api_keys().await.map(|keys| {
            println!("{}", serde_json::to_string_pretty(&keys).expect("serialises"));
            ExitCode::SUCCESS
        }),
        KeysCommand::Revoke { id } => records.revoke_api_key(&id).await.map(|found| {
            if found {
                println!("revoked API key {id}; it is refused from the next request on");
                ExitCode::SUCCESS
            } else {
                eprintln!("error: no API key with id `{id}` (see `clipforge keys list`)");
                ExitCode::from(exit::NOT_FOUND)
            }
        }),
        KeysCommand::Notify { id, notify } => {
            let notify = match targets(notify) {
                Ok(n) => n,
                Err(code) => return code,
            };
            records.set_api_key_notify(&id, notify.as_ref()).await.map(|found| {
                if !found {
                    eprintln!("error: no API key with id `{id}` (see `clipforge keys list`)");
                    return ExitCode::from(exit::NOT_FOUND);
                }
                match notify {
                    Some(_) => println!("API key {id}: its jobs are announced to the targets given"),
                    None => println!("API key {id}: its jobs are announced as the [notify] settings say"),
                }
                ExitCode::SUCCESS
            })
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::from(exit::UNREACHABLE)
    })
}

/// The targets given on the command line, checked like a job's; None when none were given.
fn targets(t: KeyTargets) -> Result<Option<NotifyRequest>, ExitCode> {
    let notify = NotifyRequest {
        telegram_chat_id: t.telegram_chat_id.filter(|v| !v.trim().is_empty()),
        webhook_url: t.webhook_url.filter(|v| !v.trim().is_empty()),
        on_queued: t.notify_on_queued.then_some(true),
    };
    let problems = notify.problems();
    if !problems.is_empty() {
        for p in problems {
            eprintln!("error: --{}: {}", p.field.trim_start_matches("notify.").replace('_', "-"), p.message);
        }
        return Err(ExitCode::from(exit::USAGE));
    }
    Ok((notify != NotifyRequest::default()).then_some(notify))
}
