//! Image commands: `pull`, `images`, `inspecti`, `rmi`, `imagefsinfo`.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use corral_cri_api::v1;
use corral_cri_api::v1::image_service_client::ImageServiceClient;
use tonic::transport::Channel;

use crate::client::{Cri, Deadline};
use crate::output::{self, Format, ImageColumns};

type ImageClient = ImageServiceClient<Channel>;

/// `pull`: pull an image from a registry.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Image to pull: NAME[:TAG|@DIGEST].
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    image: String,
    /// Use USERNAME[:PASSWORD] for accessing the registry.
    #[arg(long, value_name = "USERNAME[:PASSWORD]", conflicts_with = "auth")]
    creds: Option<String>,
    /// Use AUTH_STRING (base64 of USERNAME[:PASSWORD]) for accessing the registry.
    #[arg(long, value_name = "AUTH_STRING")]
    auth: Option<String>,
    /// Use USERNAME for accessing the registry; the password is asked for unless --password is given.
    #[arg(short = 'u', long, conflicts_with_all = ["creds", "auth"])]
    username: Option<String>,
    /// Password for --username.
    #[arg(long, requires = "username")]
    password: Option<String>,
    /// Annotation KEY=VALUE to set on the image spec of the pull request (repeatable).
    #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
}

/// `images`: list images.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only list images matching this reference.
    #[arg(value_name = "REPOSITORY[:TAG]")]
    image: Option<String>,
    /// Only show image IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
    /// Show digests.
    #[arg(long)]
    digests: bool,
    /// Show whether the image is pinned.
    #[arg(long)]
    pinned: bool,
    /// Show output without truncating the ID.
    #[arg(long)]
    no_trunc: bool,
    /// Show verbose info for images.
    #[arg(short, long)]
    verbose: bool,
}

/// `inspecti`: show the status of one or more images.
#[derive(Debug, Args)]
pub struct InspectiArgs {
    /// Images to inspect, by ID, name or digest.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "json")]
    output: Format,
    /// Do not show verbose information.
    #[arg(short, long)]
    quiet: bool,
}

/// `rmi`: remove one or more images.
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Images to remove, by ID, name or digest.
    #[arg(value_name = "IMAGE", required_unless_present_any = ["all", "prune"])]
    images: Vec<String>,
    /// Remove all images.
    #[arg(short, long)]
    all: bool,
    /// Remove all images not used by any container (pinned images are kept).
    #[arg(short = 'q', long)]
    prune: bool,
}

/// `imagefsinfo`: show image filesystem usage.
#[derive(Debug, Args)]
pub struct ImageFsInfoArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value = "json")]
    output: Format,
}

pub async fn pull(cri: &Cri, args: PullArgs) -> anyhow::Result<()> {
    let auth = auth_config(&args)?;
    let annotations = parse_annotations(&args.annotations)?;
    let mut client = cri.image().await?;
    let request = v1::PullImageRequest {
        image: Some(v1::ImageSpec {
            image: args.image.clone(),
            annotations,
            ..Default::default()
        }),
        auth,
        sandbox_config: None,
    };
    cri.debug(|| format!("PullImageRequest: {:?}", redacted(&request)));
    let spinner = pull_spinner(&args.image);
    let response = cri
        .call_unlogged("PullImage", Deadline::Long, request, |r| async move {
            client.pull_image(r).await
        })
        .await;
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    let response = response.with_context(|| format!("pulling image {:?}", args.image))?;
    println!("Image is up to date for {}", response.image_ref);
    Ok(())
}

/// An elapsed-time spinner on stderr while a pull runs, only when stderr is a terminal.
fn pull_spinner(image: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let spinner = indicatif::ProgressBar::new_spinner();
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} Pulling {msg} ({elapsed})")
    {
        spinner.set_style(style);
    }
    spinner.set_message(image.to_owned());
    spinner.enable_steady_tick(Duration::from_millis(120));
    Some(spinner)
}

/// The pull request with every credential replaced, for `--debug`.
fn redacted(request: &v1::PullImageRequest) -> v1::PullImageRequest {
    let mut copy = request.clone();
    if let Some(auth) = &mut copy.auth {
        for secret in [
            &mut auth.password,
            &mut auth.auth,
            &mut auth.identity_token,
            &mut auth.registry_token,
        ] {
            if !secret.is_empty() {
                *secret = "<redacted>".to_owned();
            }
        }
    }
    copy
}

fn auth_config(args: &PullArgs) -> anyhow::Result<Option<v1::AuthConfig>> {
    if let Some(username) = &args.username {
        let password = match &args.password {
            Some(password) => password.clone(),
            None => read_password()?,
        };
        return Ok(Some(v1::AuthConfig {
            username: username.clone(),
            password,
            ..Default::default()
        }));
    }
    if let Some(creds) = &args.creds {
        let (username, password) = parse_creds(creds)?;
        return Ok(Some(v1::AuthConfig {
            username,
            password,
            ..Default::default()
        }));
    }
    Ok(args.auth.as_ref().map(|auth| v1::AuthConfig {
        auth: auth.clone(),
        ..Default::default()
    }))
}

/// Splits `USERNAME[:PASSWORD]` as crictl does.
fn parse_creds(creds: &str) -> anyhow::Result<(String, String)> {
    if creds.is_empty() {
        bail!("credentials can't be empty");
    }
    match creds.split_once(':') {
        None => Ok((creds.to_owned(), String::new())),
        Some(("", _)) => bail!("username can't be empty"),
        Some((user, password)) => Ok((user.to_owned(), password.to_owned())),
    }
}

fn parse_annotations(pairs: &[String]) -> anyhow::Result<HashMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => bail!("invalid annotation {pair:?}: expected KEY=VALUE"),
        })
        .collect()
}

/// Reads the registry password: without echo from a terminal, else one line of stdin.
fn read_password() -> anyhow::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};

    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.is_terminal() {
        eprint!("Enter Password:");
        let saved = tcgetattr(&stdin).context("reading terminal settings")?;
        let mut silent = saved.clone();
        silent.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&stdin, SetArg::TCSANOW, &silent).context("turning off echo")?;
        let read = stdin.lock().read_line(&mut line);
        let restored = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
        eprintln!();
        read.context("reading password")?;
        restored.context("restoring terminal settings")?;
    } else {
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading password from standard input")?;
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

pub async fn images(cri: &Cri, args: ImagesArgs) -> anyhow::Result<()> {
    let mut client = cri.image().await?;
    let mut response = list_images(cri, &mut client, args.image.as_deref())
        .await
        .context("listing images")?;
    sort_images(&mut response.images);
    let text = match args.output {
        Format::Json | Format::Yaml => {
            output::render(&output::list_images_json(&response), args.output)? + "\n"
        }
        Format::Table if args.quiet => output::image_ids(&response.images),
        Format::Table if args.verbose => output::images_verbose(&response.images),
        Format::Table => output::images_table(
            &response.images,
            ImageColumns {
                digests: args.digests,
                pinned: args.pinned,
                no_trunc: args.no_trunc,
            },
        ),
    };
    print!("{text}");
    Ok(())
}

async fn list_images(
    cri: &Cri,
    client: &mut ImageClient,
    name: Option<&str>,
) -> Result<v1::ListImagesResponse, crate::client::RpcError> {
    let request = v1::ListImagesRequest {
        filter: name.map(|name| v1::ImageFilter {
            image: Some(image_spec(name)),
        }),
    };
    cri.call("ListImages", Deadline::Call, request, |r| {
        client.list_images(r)
    })
    .await
}

/// Orders images like crictl: by first tag, else first digest, else ID.
fn sort_images(images: &mut [v1::Image]) {
    images.sort_by(|a, b| {
        let key = |i: &v1::Image| {
            i.repo_tags
                .first()
                .or(i.repo_digests.first())
                .unwrap_or(&i.id)
                .clone()
        };
        key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id))
    });
}

fn image_spec(name: &str) -> v1::ImageSpec {
    v1::ImageSpec {
        image: name.to_owned(),
        ..Default::default()
    }
}

async fn image_status(
    cri: &Cri,
    client: &mut ImageClient,
    name: &str,
    verbose: bool,
) -> Result<v1::ImageStatusResponse, crate::client::RpcError> {
    let request = v1::ImageStatusRequest {
        image: Some(image_spec(name)),
        verbose,
    };
    cri.call("ImageStatus", Deadline::Call, request, |r| {
        client.image_status(r)
    })
    .await
}

pub async fn inspecti(cri: &Cri, args: InspectiArgs) -> anyhow::Result<()> {
    let mut client = cri.image().await?;
    let mut docs = Vec::new();
    for name in &args.images {
        let response = image_status(cri, &mut client, name, !args.quiet)
            .await
            .with_context(|| format!("image status for {name:?}"))?;
        let Some(image) = &response.image else {
            bail!("no such image {name:?} present");
        };
        if args.output == Format::Table {
            print!("{}", image_status_table(image, &response.info, !args.quiet));
        } else {
            let status = output::image_json(image);
            docs.push(output::status_document(
                vec![("status", status)],
                &response.info,
            ));
        }
    }
    if !docs.is_empty() {
        println!("{}", output::render(&output::combine(docs), args.output)?);
    }
    Ok(())
}

fn image_status_table(image: &v1::Image, info: &HashMap<String, String>, verbose: bool) -> String {
    let mut out = format!("ID: {}\n", image.id);
    for tag in &image.repo_tags {
        out.push_str(&format!("Tag: {tag}\n"));
    }
    for digest in &image.repo_digests {
        out.push_str(&format!("Digest: {digest}\n"));
    }
    out.push_str(&format!("Size: {}\n", output::format_size(image.size)));
    if verbose {
        let mut keys: Vec<_> = info.keys().collect();
        keys.sort();
        for key in keys {
            out.push_str(&format!("Info[{key}]: {}\n", info[key]));
        }
    }
    out
}

pub async fn rmi(cri: &Cri, args: RmiArgs) -> anyhow::Result<()> {
    let mut client = cri.image().await?;
    // Ordered and deduplicated: (name, remove?).
    let mut selected: Vec<(String, bool)> = Vec::new();
    let select = |selected: &mut Vec<(String, bool)>, name: &str, remove: bool| match selected
        .iter_mut()
        .find(|(n, _)| n == name)
    {
        Some(entry) => entry.1 = remove,
        None => selected.push((name.to_owned(), remove)),
    };
    for name in &args.images {
        select(&mut selected, name, true);
    }
    if args.all || args.prune {
        let all = list_images(cri, &mut client, None)
            .await
            .context("listing images")?;
        for image in &all.images {
            if args.prune && image.pinned {
                cri.debug(|| format!("excluding pinned image {}", image.id));
                continue;
            }
            select(&mut selected, &image.id, true);
        }
    }
    if args.prune {
        for id in images_in_use(cri, &mut client).await? {
            cri.debug(|| format!("excluding image {id} in use by a container"));
            select(&mut selected, &id, false);
        }
    }
    if !selected.iter().any(|(_, remove)| *remove) {
        eprintln!("No images to remove");
        return Ok(());
    }

    let mut failed = false;
    for (name, _) in selected.iter().filter(|(_, remove)| *remove) {
        match remove_one(cri, &mut client, name).await {
            Ok(deleted) => deleted.iter().for_each(|n| println!("Deleted: {n}")),
            // Another client may remove an image while we prune: not an error.
            Err(_) if args.prune => {}
            Err(err) => {
                eprintln!("corralctl: {err:#}");
                failed = true;
            }
        }
    }
    if failed {
        bail!("unable to remove the image(s)");
    }
    Ok(())
}

/// Removes one image and returns the names to report as deleted.
async fn remove_one(
    cri: &Cri,
    client: &mut ImageClient,
    name: &str,
) -> anyhow::Result<Vec<String>> {
    let status = image_status(cri, client, name, false)
        .await
        .with_context(|| format!("image status for {name:?}"))?;
    let Some(image) = status.image else {
        bail!("no such image {name:?} present");
    };
    let request = v1::RemoveImageRequest {
        image: Some(image_spec(name)),
    };
    cri.call("RemoveImage", Deadline::Call, request, |r| {
        client.remove_image(r)
    })
    .await
    .with_context(|| format!("removing image {name:?}"))?;
    Ok(deleted_names(image, name))
}

/// crictl reports tags, else digests; an image with neither is reported by what was asked.
fn deleted_names(image: v1::Image, asked: &str) -> Vec<String> {
    if !image.repo_tags.is_empty() {
        image.repo_tags
    } else if !image.repo_digests.is_empty() {
        image.repo_digests
    } else {
        vec![asked.to_owned()]
    }
}

/// IDs of images used by containers; a runtime without ListContainers has none.
async fn images_in_use(cri: &Cri, images: &mut ImageClient) -> anyhow::Result<Vec<String>> {
    let mut runtime = cri.runtime().await?;
    let request = v1::ListContainersRequest { filter: None };
    let containers = match cri
        .call("ListContainers", Deadline::Call, request, |r| {
            runtime.list_containers(r)
        })
        .await
    {
        Ok(response) => response.containers,
        Err(err) if err.code() == tonic::Code::Unimplemented => Vec::new(),
        Err(err) => return Err(err).context("listing containers"),
    };
    let mut ids = Vec::new();
    for container in containers {
        ids.extend(
            [&container.image_id, &container.image_ref]
                .into_iter()
                .filter(|id| !id.is_empty())
                .cloned(),
        );
        let Some(name) = container.image.map(|spec| spec.image) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        match image_status(cri, images, &name, false).await {
            Ok(status) => ids.extend(status.image.map(|image| image.id)),
            Err(err) => eprintln!("corralctl: image status for {name:?}: {err}"),
        }
    }
    Ok(ids)
}

pub async fn imagefsinfo(cri: &Cri, args: ImageFsInfoArgs) -> anyhow::Result<()> {
    let mut client = cri.image().await?;
    let response = cri
        .call(
            "ImageFsInfo",
            Deadline::Call,
            v1::ImageFsInfoRequest {},
            |r| client.image_fs_info(r),
        )
        .await
        .context("image filesystem info")?;
    if args.output == Format::Table {
        print!("{}", fs_info_table(&response));
        return Ok(());
    }
    let doc = output::status_document(
        vec![("status", output::image_fs_info_json(&response))],
        &HashMap::new(),
    );
    println!("{}", output::render(&doc, args.output)?);
    Ok(())
}

fn fs_info_table(response: &v1::ImageFsInfoResponse) -> String {
    let mut out = String::new();
    for (label, filesystems) in [
        ("Container", &response.container_filesystems),
        ("Image", &response.image_filesystems),
    ] {
        out.push_str(&format!("{label} Filesystem\n"));
        for (i, fs) in filesystems.iter().enumerate() {
            let used = fs.used_bytes.as_ref().map_or(0, |v| v.value);
            let inodes = fs.inodes_used.as_ref().map_or(0, |v| v.value);
            let mountpoint = fs.fs_id.as_ref().map_or("", |id| id.mountpoint.as_str());
            out.push_str(&format!("TimeStamp[{i}]: {}\n", fs.timestamp));
            out.push_str(&format!("Disk[{i}]: {}\n", output::human_size(used, 4)));
            out.push_str(&format!("Inodes[{i}]: {inodes}\n"));
            out.push_str(&format!("Mountpoint[{i}]: {mountpoint}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
