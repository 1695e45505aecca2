//! `kdstore show STORE --view ID [--view ID ...] | --where SQL --out FILE.svg`.

use std::path::PathBuf;

use kdstore_core::show::{self, ShowRequest};

use super::{classify_views, teacher_or_first, StoreAt, UserError};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreAt,
    /// View ids to draw (repeat the flag or separate them with commas).
    #[arg(long = "view", value_delimiter = ',')]
    views: Vec<i64>,
    /// SQL condition over the `labels` view choosing the views instead (the first --limit of them).
    #[arg(long = "where", conflicts_with = "views")]
    filter: Option<String>,
    /// Most views drawn with --where.
    #[arg(long, default_value_t = 8)]
    limit: usize,
    /// The SVG file to write (text is drawn by the viewer, so no fonts are needed).
    #[arg(long)]
    out: PathBuf,
    /// Teacher whose top classes are captioned (default: the store's first).
    #[arg(long)]
    teacher: Option<String>,
    /// Teacher classes listed per view.
    #[arg(long, default_value_t = 3)]
    top: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let condition = match (&args.filter, args.views.is_empty()) {
        (Some(filter), _) => filter.clone(),
        (None, false) => {
            let ids: Vec<String> = args.views.iter().map(i64::to_string).collect();
            format!("view_id IN ({})", ids.join(", "))
        }
        (None, true) => return Err(UserError::msg("name views with --view ID or choose them with --where SQL".into())),
    };
    if args.out.extension().and_then(|e| e.to_str()) != Some("svg") {
        return Err(UserError::msg(format!(
            "--out {}: kdstore show writes SVG (open it in a browser); name the file *.svg",
            args.out.display()
        )));
    }
    let store = args.store.open()?;
    let teacher = teacher_or_first(&store, args.teacher.as_deref())?;
    let limit = if args.filter.is_some() { args.limit } else { args.views.len() };
    let request = ShowRequest { teacher: &teacher, condition: &condition, limit, top: args.top };
    let drawn = show::show(&store, &request, &args.out).map_err(classify_views)?;
    if args.filter.is_none() && drawn < args.views.len() {
        eprintln!("warning: {} of the {} views named are not in the store", args.views.len() - drawn, args.views.len());
    }
    eprintln!(
        "{}: drew {drawn} view{} to {}",
        args.store.store.display(),
        if drawn == 1 { "" } else { "s" },
        args.out.display()
    );
    Ok(())
}
