//! `clipforge keys`: make, list and revoke API keys, on the record store directly.
//!
//! A new key is printed once, alone on stdout, so `KEY=$(clipforge keys create …)`
//! captures it; everything said about it goes to stderr. Only its hash is stored.

use std::process::ExitCode;

use secrecy::ExposeSecret;

use super::{KeysCommand, exit};
use crate::settings::{Settings, env_var_for};
use crate::store::records::{NewApiKey, Scope};

/// Longest key name accepted.
const MAX_NAME_CHARS: usize = 100;

pub async fn run(settings: Settings, command: KeysCommand) -> ExitCode {
    let records = match crate::store::records::connect(&settings.records_url()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::UNREACHABLE);
        }
    };
    let result = match command {
        KeysCommand::Create { name, scopes } => {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
                eprintln!("error: --name must be 1-{MAX_NAME_CHARS} characters");
                return ExitCode::from(exit::USAGE);
            }
            let scopes = match Scope::parse_list(&scopes) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: --scopes: {e}");
                    return ExitCode::from(exit::USAGE);
                }
            };
            let (key, new) = NewApiKey::generate(name, scopes);
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
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::from(exit::UNREACHABLE)
    })
}
