//! `wharf policy check`, and the policy `wharf pull`, `unpack` and `run` apply.
//!
//! The policy file is `--policy FILE`, else `WHARF_POLICY`, else `policy` in `config.toml`: a Wharf policy (TOML,
//! or the same as JSON) or a containers `policy.json` (recognised by its `default`/`transports` keys). Without
//! one, or where no rule matches, the default holds: a tag signed in the repository's TUF 1.0 or Notary v1 trust
//! data. `/etc/containers/policy.json` is never read unless named: podman's default there is
//! `insecureAcceptAnything`, which would turn Wharf's verified default into "accept anything".

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::image::{pull_options, TrustArgs};
use super::{ClientConfig, Global};
use crate::io::policy::{decide, default_rule, PolicyError, StdFiles};
use crate::io::pull::PullOptions;
use crate::io::store::ContentStore;
use wharf_format::image_ref::ImageRef;
use wharf_format::policy::{containers, Material, Policy, Rule};

/// The most bytes of a policy file.
const MAX_POLICY: u64 = 1 << 20;

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Check an image against the signature policy: print which requirement passed or failed and why. Exits 0 when
    /// the policy accepts the image, 3 when it does not.
    Check {
        /// The image: HOST/REPOSITORY[:TAG] or HOST/REPOSITORY@DIGEST.
        image: String,
        #[command(flatten)]
        trust: TrustArgs,
    },
}

pub(super) async fn run(g: &Global, cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Check { image, trust } => check(g, &image, &trust).await,
    }
}

/// A policy file read for one registry: its rules, and the keys a containers `policy.json` carried inline.
struct Loaded {
    path: PathBuf,
    policy: Policy,
    files: StdFiles,
}

/// The policy file named for this command, if any.
fn policy_path(g: &Global, trust: &TrustArgs) -> anyhow::Result<Option<PathBuf>> {
    if let Some(p) = &trust.policy {
        return Ok(Some(p.clone()));
    }
    Ok(ClientConfig::load(&g.config())?.policy)
}

/// Reads `path` for images of `host`, and refuses a policy that cannot be applied as written.
fn load(path: &Path, host: &str) -> anyhow::Result<Loaded> {
    let ctx = |e: &dyn std::fmt::Display| anyhow::anyhow!("policy {}: {e}", path.display());
    let meta = std::fs::metadata(path).map_err(|e| ctx(&e))?;
    anyhow::ensure!(meta.len() <= MAX_POLICY, "policy {}: more than {MAX_POLICY} bytes", path.display());
    let bytes = std::fs::read(path).map_err(|e| ctx(&e))?;
    let base = path.parent().map(Path::to_path_buf);
    let (policy, inline) = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(v) if containers::is_containers(&v) => {
            let m = containers::parse(&bytes, host).map_err(|e| ctx(&e))?;
            (m.policy, m.inline)
        }
        Ok(v) => (serde_json::from_value::<Policy>(v).map_err(|e| ctx(&e))?, Default::default()),
        Err(_) => {
            let text = std::str::from_utf8(&bytes).map_err(|e| ctx(&e))?;
            (toml::from_str::<Policy>(text).map_err(|e| ctx(&e))?, Default::default())
        }
    };
    policy.validate().map_err(|e| ctx(&e))?;
    Ok(Loaded { path: path.to_path_buf(), policy, files: StdFiles { inline, base } })
}

/// The rule deciding for `image` under `loaded`, with the material it names (read now: a key that cannot be read
/// refuses the command).
fn rule_and_material(loaded: &Loaded, image: &ImageRef) -> anyhow::Result<Option<(Rule, Material)>> {
    let Some(rule) = loaded.policy.rule_for(&image.repository) else { return Ok(None) };
    let material = Material::gather(std::slice::from_ref(rule), &loaded.files)?;
    Ok(Some((rule.clone(), material)))
}

/// Applies the policy, if one is named and a rule matches, to a pull: decides which digest the reference may be
/// pulled as and sets it in `opts`, printing which requirement was satisfied. `false`: no policy applies (the
/// pull verifies the tag through trust data, the default).
pub(super) async fn apply(
    g: &Global,
    store: &ContentStore,
    opts: &mut PullOptions,
    trust: &TrustArgs,
) -> anyhow::Result<bool> {
    let Some(path) = policy_path(g, trust)? else { return Ok(false) };
    anyhow::ensure!(!trust.insecure_skip_trust, "--insecure-skip-trust and a signature policy contradict each other");
    let loaded = load(&path, &opts.image.host)?;
    let Some((rule, material)) = rule_and_material(&loaded, &opts.image)? else {
        eprintln!("policy {}: no rule for {}: the default applies", loaded.path.display(), opts.image.repository);
        return Ok(false);
    };
    let d = decide(store, opts, &rule, &material).await?;
    println!("{}: {}", opts.image, d.verdict.summary());
    opts.decided = Some((d.digest, d.signed));
    Ok(true)
}

async fn check(g: &Global, image: &str, trust: &TrustArgs) -> anyhow::Result<()> {
    let store = g.store()?;
    let image: ImageRef = image.parse()?;
    let opts = pull_options(g, image.clone(), trust)?;
    let chosen = match policy_path(g, trust)? {
        Some(path) => {
            let loaded = load(&path, &image.host)?;
            rule_and_material(&loaded, &image)?.map(|rm| (rm, format!("policy {}", loaded.path.display())))
        }
        None => None,
    };
    let ((rule, material), from) = match chosen {
        Some(c) => c,
        None => ((default_rule(), Material::default()), "no policy rule: the default".to_string()),
    };
    println!("{image}: {from}");
    match decide(&store, &opts, &rule, &material).await {
        Ok(d) => {
            print!("{}", d.verdict.report());
            println!("{image}: accepted as {}", d.digest);
            Ok(())
        }
        Err(e @ PolicyError::Denied { .. }) => {
            if let PolicyError::Denied { verdicts, .. } = &e {
                verdicts.iter().for_each(|v| print!("{}", v.report()));
            }
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}
