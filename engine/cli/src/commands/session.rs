//! The session of one command: the global options, the user configuration
//! (read once, its errors reported once), and what every command opens
//! from them: the store, the mirrors, the remotes. Every subcommand gets a
//! `&Session` (it derefs to the global options).

use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use cas_builder::remote::Remotes;
use cas_builder::sources::Mirrors;
use cas_format::config::UserConfig;
use cas_store::Store;

use crate::cli::Global;
use crate::commands::remotes::RemoteFlags;
use crate::exit::Failure;

pub(crate) struct Session {
    global: Global,
    config: OnceLock<Option<UserConfig>>,
}

impl Deref for Session {
    type Target = Global;
    fn deref(&self) -> &Global {
        &self.global
    }
}

impl Session {
    pub(crate) fn new(global: Global) -> Session {
        Session {
            global,
            config: OnceLock::new(),
        }
    }

    /// The user configuration (`--config`, `CAS_CONFIG`, or the default
    /// file); a broken one is reported (file, line, column) and exits 2.
    pub(crate) fn config(&self) -> Result<&UserConfig, Failure> {
        let config = self.config.get_or_init(|| {
            match cas_format::config::load_user_config(self.global.config.as_deref()) {
                Ok(c) => Some(c),
                Err(diags) => {
                    for e in &diags.errors {
                        eprintln!("{:?}", miette::Report::new(e.clone()));
                    }
                    None
                }
            }
        });
        config.as_ref().ok_or(Failure::Silent(2))
    }

    /// The target architecture: `--arch` / `CAS_ARCH`, else the user
    /// configuration's `arch`, else none (this machine's).
    pub(crate) fn target_arch(&self) -> Result<Option<String>, Failure> {
        if let Some(a) = &self.global.arch {
            return Ok(Some(a.clone()));
        }
        Ok(self.config()?.arch.clone())
    }

    /// The content store (`--store`, `CAS_STORE`, or the user's cache directory).
    pub(crate) fn store(&self) -> Result<Store, Failure> {
        let dir = self.global.store_dir();
        Store::open(&dir).map_err(|e| {
            Failure::failed(miette::miette!(
                "cannot open the store {}: {e}",
                dir.display()
            ))
        })
    }

    /// The mirrors of the user configuration, per alias in the order
    /// written, then those `project` declares (a BuildStream project's
    /// `mirrors:`).
    pub(crate) fn mirrors(&self, project: &cas_format::Project) -> Result<Mirrors, Failure> {
        let mut mirrors = self.user_mirrors()?;
        for (alias, bases) in &project.mirrors {
            for base in bases {
                mirrors.add(alias.clone(), base.clone());
            }
        }
        Ok(mirrors)
    }

    /// The mirrors of the user configuration alone.
    pub(crate) fn user_mirrors(&self) -> Result<Mirrors, Failure> {
        let mut mirrors = Mirrors::new();
        for (alias, bases) in &self.config()?.mirrors {
            for base in bases {
                mirrors.add(alias.clone(), base.clone());
            }
        }
        Ok(mirrors)
    }

    /// The remotes of a command: configured ones first, then `--remote`s.
    /// `push_all`: every remote may be pushed to (`cas push`).
    pub(crate) fn remotes(
        &self,
        flags: &RemoteFlags,
        push_all: bool,
    ) -> Result<Option<Arc<Remotes>>, Failure> {
        let state = cas_store::Layout::new(&self.global.store_dir()).reapi();
        crate::commands::remotes::open(self.config()?, flags, push_all, &state)
    }
}
