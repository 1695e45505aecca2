//! The study report as one self-contained HTML page (`report/index.html`): the Markdown report
//! rendered by pulldown-cmark, with its plot images replaced by the plots' SVG inline, and a style
//! sheet in the page — no JavaScript, no network, nothing beside it needed.

use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag, TagEnd};

use super::plots::Plot;
use super::report::PLOTS;

const STYLE: &str = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;font-size:13px;margin:1em 0;display:block;overflow-x:auto}\
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}\
th{background:#f3f3f3}td:nth-child(2),th:nth-child(2){text-align:left}\
code{font-size:12px;background:#f6f6f6;padding:1px 3px}li{margin:.3em 0}\
svg{max-width:100%;height:auto;display:block;margin:.5em 0 2em}";

/// The page of `markdown` (the report) with `plots` inline.
pub fn page(title: &str, markdown: &str, plots: &[Plot]) -> String {
    let mut body = String::new();
    let mut in_plot = false;
    let events = Parser::new_ext(markdown, Options::ENABLE_TABLES).filter_map(|event| {
        let plot = match &event {
            Event::Start(Tag::Image { dest_url, .. }) => {
                plots.iter().find(|p| dest_url.as_ref() == format!("{PLOTS}/{}.svg", p.name))
            }
            _ => None,
        };
        match (plot, &event) {
            (Some(plot), _) => {
                in_plot = true;
                Some(Event::InlineHtml(CowStr::from(plot.svg.clone())))
            }
            (None, Event::End(TagEnd::Image)) if in_plot => {
                in_plot = false;
                None
            }
            (None, _) if in_plot => None,
            (None, _) => Some(event),
        }
    });
    html::push_html(&mut body, events);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(title)
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_and_plots_are_inlined() {
        let plot = Plot { name: "cells".into(), caption: "c".into(), svg: "<svg id=\"x\"></svg>".into() };
        let markdown = "# A <study>\n\n| a | b |\n|---|---|\n| 1 | `kd` |\n\n![cells](plots/cells.svg)\n";
        let page = page("A <study>", markdown, &[plot]);
        assert!(page.contains("<title>A &lt;study&gt;</title>"));
        assert!(page.contains("<table>") && page.contains("<td><code>kd</code></td>"), "{page}");
        assert!(page.contains("<svg id=\"x\"></svg>") && !page.contains("<img"), "{page}");
        assert!(!page.contains("<script") && !page.contains("http"));
    }
}
