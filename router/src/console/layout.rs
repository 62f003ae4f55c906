//! The page shell every console page shares: head (stylesheets, scripts as files, htmx's
//! configuration in a `<meta>`), navigation, theme toggle, who is signed in; and the small pieces
//! pages are built from (stat tiles, charts, empty states). Maud escapes every value written
//! into the markup, so key, team and model names (user data) render as text.

use axum::response::{Html, IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use maud::{DOCTYPE, Markup, html};
use serde::Serialize;

use super::{assets, csrf, session};
use crate::admin::auth::Admin;

/// htmx's settings: no `eval` (so `hx-on` and `js:` values are refused, as the CSP wants), no
/// injected indicator `<style>` (the stylesheet has it), and requests to this origin only.
const HTMX_CONFIG: &str = r#"{"allowEval":false,"allowScriptTags":false,"includeIndicatorStyles":false,"selfRequestsOnly":true,"historyCacheSize":0}"#;

/// The console's pages, in navigation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nav {
    /// Spend, requests, errors and latency at a glance.
    Overview,
    /// Budgets with burn-down and forecast.
    Budgets,
    /// Client keys.
    Keys,
    /// The generation explorer.
    Requests,
    /// Provider and route health, config verdicts.
    Providers,
    /// Try models side by side.
    Playground,
    /// The login page (no navigation).
    Login,
}

impl Nav {
    const ALL: [Nav; 6] = [
        Nav::Overview,
        Nav::Budgets,
        Nav::Keys,
        Nav::Requests,
        Nav::Providers,
        Nav::Playground,
    ];

    fn label(self) -> &'static str {
        match self {
            Nav::Overview => "Overview",
            Nav::Budgets => "Budgets",
            Nav::Keys => "Keys",
            Nav::Requests => "Requests",
            Nav::Providers => "Providers & routes",
            Nav::Playground => "Playground",
            Nav::Login => "Sign in",
        }
    }

    fn href(self) -> &'static str {
        match self {
            Nav::Overview => "/console/",
            Nav::Budgets => "/console/budgets",
            Nav::Keys => "/console/keys",
            Nav::Requests => "/console/requests",
            Nav::Providers => "/console/providers",
            Nav::Playground => "/console/playground",
            Nav::Login => "/console/login",
        }
    }
}

/// A whole page: `nav` marks the current page, `admin` is who is signed in (none on the login
/// page), `csrf` the token forms and scripts send back.
pub fn page(nav: Nav, admin: Option<&Admin>, csrf: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=(HTMX_CONFIG);
                meta name="csrf-token" content=(csrf);
                title { (nav.label()) " · Switchboard" }
                link rel="stylesheet" href=(assets::url("vendor/uPlot.min.css"));
                link rel="stylesheet" href=(assets::url("console.css"));
                script src=(assets::url("vendor/htmx.min.js")) defer {}
                script src=(assets::url("vendor/uPlot.iife.min.js")) defer {}
                script src=(assets::url("console.js")) defer {}
            }
            body hx-boost=[admin.map(|_| "true")] {
                header.top {
                    a.brand href="/console/" { "Switchboard" }
                    @if admin.is_some() {
                        nav {
                            @for n in Nav::ALL {
                                a href=(n.href()) aria-current=[(n == nav).then_some("page")] { (n.label()) }
                            }
                        }
                    }
                    div.right {
                        button #theme-toggle type="button" title="Switch between dark and light" { "◐ Theme" }
                        @if let Some(admin) = admin {
                            span.who data-testid="who" { (super::who(admin)) }
                            @if matches!(admin, Admin::Session) {
                                form.inline method="post" action="/console/logout" hx-boost="false" {
                                    input type="hidden" name=(csrf::FIELD) value=(csrf);
                                    button type="submit" { "Sign out" }
                                }
                            }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

/// The page as a response, setting the CSRF cookie when the browser has none: `render` gets the
/// token to write into the page.
pub fn respond(headers: &HeaderMap, render: impl FnOnce(&str) -> Markup) -> Response {
    let existing = session::cookie(headers, csrf::COOKIE).filter(|t| csrf::well_formed(t));
    let token = existing.map_or_else(csrf::new_token, str::to_string);
    let mut resp = Html(render(&token).into_string()).into_response();
    if existing.is_none() {
        let cookie = session::set_cookie(
            csrf::COOKIE,
            &token,
            session::LIFETIME,
            session::over_tls(headers),
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// A headline number: `key` names it for tests and scripts (`data-stat`), `value` is shown,
/// `exact` (when given) is the precise value behind a rounded one.
pub fn stat(key: &str, label: &str, value: &str, exact: Option<&str>) -> Markup {
    html! {
        div.stat {
            div.label { (label) }
            div.value data-stat=(key) data-exact=[exact] title=[exact] { (value) }
        }
    }
}

/// One series of a chart.
#[derive(Debug, Serialize)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// One value per x (None: no point).
    pub values: Vec<Option<f64>>,
    /// Drawn dashed (limits, projections).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dashed: bool,
}

/// A chart's data, drawn by `console.js` with uPlot.
#[derive(Debug, Serialize)]
pub struct Chart {
    /// Heading.
    pub title: String,
    /// Unit of the y axis (`USD`, `requests`).
    pub unit: String,
    /// X values, Unix seconds.
    pub xs: Vec<i64>,
    /// `hour` or `day`: how x values are labelled.
    pub step: &'static str,
    /// Lines.
    pub series: Vec<Series>,
}

/// A chart placeholder: the data travels in a `data-chart` attribute (escaped JSON, no inline
/// script) and a table fallback says the same for screen readers and tests.
pub fn chart(id: &str, c: &Chart) -> Markup {
    let data = serde_json::to_string(c).unwrap_or_else(|_| "{}".into());
    html! {
        figure.chart #(id) {
            figcaption { (c.title) " (" (c.unit) ")" }
            div.plot data-chart=(data) {}
            @if c.series.is_empty() || c.xs.is_empty() {
                p.empty { "No data in this range yet." }
            }
        }
    }
}

/// A note that the usage store is off or failing, in place of what it would show.
pub fn no_store(why: &str) -> Markup {
    html! { p.notice data-testid="no-store" { "Usage data is unavailable: " (why) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_renders_as_text_never_as_markup() {
        let hostile = r#"<script>alert("x")</script>"#;
        let page = page(
            Nav::Keys,
            Some(&Admin::Proxy(hostile.into())),
            "tok",
            html! { td { (hostile) } },
        )
        .into_string();
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
        let c = Chart {
            title: hostile.into(),
            unit: "USD".into(),
            xs: vec![1],
            step: "day",
            series: vec![Series {
                label: format!("\"'{hostile}"),
                values: vec![Some(1.0)],
                dashed: false,
            }],
        };
        let drawn = chart("c", &c).into_string();
        assert!(!drawn.contains("<script>"), "{drawn}");
        assert!(drawn.contains("data-chart=\"{&quot;title&quot;:&quot;&lt;script&gt;"));
    }

    #[test]
    fn every_page_loads_only_its_own_files_and_configures_htmx_without_eval() {
        let html = page(Nav::Overview, Some(&Admin::Loopback), "tok", html! {}).into_string();
        assert!(html.contains(r#"<meta name="htmx-config" content="{&quot;allowEval&quot;:false"#));
        assert!(html.contains("includeIndicatorStyles&quot;:false"));
        assert!(!html.contains("<script>"), "no inline script");
        assert!(!html.contains("style="), "no inline style");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no CDN"
        );
        assert!(html.contains(r#"aria-current="page""#));
    }
}
