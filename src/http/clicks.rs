//! `GET /v1/links/{code}/clicks`: the JSON page (optionally only `from`..`to`)
//! or, with `format=csv`, every click of the window streamed as CSV a store
//! page at a time, so memory stays bounded whatever the link's history.

use axum::{
    body::Body,
    extract::Path,
    http::header,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use super::filter::{Verdict, filtered_page};
use super::json::{PageParams, Query, page_json};
use super::links::{click_json, owned_link};
use super::{auth::Caller, json::timestamp};
use crate::domain::Click;
use crate::store::{Paging, SharedStore};

/// Clicks read per store page while exporting.
const EXPORT_PAGE: usize = 500;

pub const CSV_HEADER: &str =
    "id,at,ip,country,region,city,device,browser,os,is_bot,referrer_host,referrer,user_agent\n";

#[derive(Deserialize)]
pub struct ClickParams {
    #[serde(flatten)]
    page: PageParams,
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

/// Which clicks of a newest-first listing a `[from, to)` window keeps.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClickWindow {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl ClickWindow {
    fn parse(from: Option<&str>, to: Option<&str>) -> ApiResult<Self> {
        let time = |field: &str, text: Option<&str>| {
            text.map(|t| {
                DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        ApiError::bad_parameter(field, format!("{field} must be an RFC 3339 time"))
                    })
            })
            .transpose()
        };
        Ok(Self {
            from: time("from", from)?,
            to: time("to", to)?,
        })
    }

    pub fn judge(&self, click: &Click) -> Verdict {
        if self.to.is_some_and(|to| click.at >= to) {
            Verdict::Skip
        } else if self.from.is_some_and(|from| click.at < from) {
            Verdict::Stop
        } else {
            Verdict::Keep
        }
    }
}

pub async fn list(
    Caller { account, state }: Caller,
    Path(code): Path<String>,
    Query(params): Query<ClickParams>,
) -> ApiResult<Response> {
    let csv = match params.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            return Err(ApiError::bad_parameter(
                "format",
                "format must be json or csv",
            ));
        }
    };
    let window = ClickWindow::parse(params.from.as_deref(), params.to.as_deref())?;
    let paging = params.page.paging()?;
    owned_link(&state, account, &code).await?;
    if csv {
        return Ok(export(state.store.clone(), code, window));
    }
    let store = &state.store;
    let read = |paging: Paging| store.list_clicks(&code, paging);
    let page = filtered_page(paging, read, |c| window.judge(c)).await?;
    Ok(page_json(page, click_json).into_response())
}

fn export(store: SharedStore, code: String, window: ClickWindow) -> Response {
    let disposition = format!("attachment; filename=\"{code}-clicks.csv\"");
    // None: the export is over. The first chunk is the header row.
    let start = Some((None::<String>, true));
    let chunks = futures::stream::unfold(start, move |state| {
        let (store, code) = (store.clone(), code.clone());
        async move {
            let (cursor, first) = state?;
            let mut out = String::new();
            if first {
                out.push_str(CSV_HEADER);
            }
            let paging = Paging {
                limit: EXPORT_PAGE,
                cursor,
            };
            let page = match store.list_clicks(&code, paging).await {
                Ok(page) => page,
                Err(e) => {
                    // Headers are sent: all that is left is to cut the body short.
                    tracing::warn!(code = %code, error = %e, "click export failed");
                    return Some((Err(std::io::Error::other(e.to_string())), None));
                }
            };
            let mut next = page.next_cursor.map(|c| (Some(c), false));
            for click in &page.items {
                match window.judge(click) {
                    Verdict::Keep => csv_row(&mut out, click),
                    Verdict::Skip => {}
                    Verdict::Stop => {
                        next = None;
                        break;
                    }
                }
            }
            Some((Ok::<_, std::io::Error>(Bytes::from(out)), next))
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(chunks),
    )
        .into_response()
}

/// One click as a CSV line, in [`CSV_HEADER`]'s order.
pub fn csv_row(out: &mut String, c: &Click) {
    let ip = c.ip.to_string();
    let at = timestamp(c.at);
    let id = c.id.to_string();
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let cells = [
        id,
        at,
        ip,
        opt(&c.location.country),
        opt(&c.location.region),
        opt(&c.location.city),
        c.device.clone(),
        c.browser.clone(),
        c.os.clone(),
        c.is_bot.to_string(),
        opt(&c.referrer_host),
        c.referrer.clone(),
        c.user_agent.clone(),
    ];
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_cell(out, cell);
    }
    out.push('\n');
}

/// A cell quoted when it must be, and defused when a spreadsheet would run it
/// as a formula (a leading `'` makes it text).
fn push_cell(out: &mut String, cell: &str) {
    let formula = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = cell.contains([',', '"', '\n', '\r']);
    if quote {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    for ch in cell.chars() {
        if ch == '"' {
            out.push('"');
        }
        out.push(ch);
    }
    if quote {
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(s: &str) -> String {
        let mut out = String::new();
        push_cell(&mut out, s);
        out
    }

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(cell("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(cell("+1"), "'+1");
        assert_eq!(cell("-2"), "'-2");
        assert_eq!(cell("@cmd"), "'@cmd");
        assert_eq!(cell("=1,2"), "\"'=1,2\"");
        assert_eq!(cell(""), "");
    }

    #[test]
    fn a_window_skips_newer_and_stops_at_older() {
        let w =
            ClickWindow::parse(Some("2026-11-01T00:00:00Z"), Some("2026-11-02T00:00:00Z")).unwrap();
        let mut click = Click {
            id: uuid::Uuid::now_v7(),
            code: "c".into(),
            at: Utc::now(),
            ip: "203.0.113.1".parse().unwrap(),
            user_agent: String::new(),
            referrer: String::new(),
            referrer_host: None,
            location: Default::default(),
            device: String::new(),
            browser: String::new(),
            os: String::new(),
            is_bot: false,
        };
        let verdict = |w: &ClickWindow, c: &Click| w.judge(c);
        click.at = "2026-11-02T00:00:00Z".parse().unwrap();
        assert_eq!(verdict(&w, &click), Verdict::Skip);
        click.at = "2026-11-01T12:00:00Z".parse().unwrap();
        assert_eq!(verdict(&w, &click), Verdict::Keep);
        click.at = "2026-10-31T23:59:59Z".parse().unwrap();
        assert_eq!(verdict(&w, &click), Verdict::Stop);
        assert!(ClickWindow::parse(Some("nope"), None).is_err());
    }
}
