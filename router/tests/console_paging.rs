//! The keys and budgets pages a page at a time (issue 18: pages paginate, so a config of many
//! keys or budgets does not make one huge page, nor one store query per key of it): 230 keys show
//! 100, 100 and 30 by key id with "Next →" links between, every key exactly once; 45 budgets show
//! 20, 20 and 5; each key's row names the budgets covering it; the providers page shows 153 routes
//! as 100 and 53 and its config objects a hundred at a time, each page of one keeping the other's
//! place.

mod support;

use std::{collections::BTreeSet, net::SocketAddr};

use axum::{body::Body, extract::ConnectInfo};
use support::{manifests, scratch_dir, sqlite_usage};
use switchboard_router::{app::admin_app, state::Settings};
use tower::ServiceExt;

const KEYS: usize = 230;
const BUDGETS: usize = 45;
const ROUTES: usize = 150;

/// The shared test manifests plus `KEYS` keys `page-NNN` and `BUDGETS` budgets `b-NN`, budget `b-i`
/// over the keys whose number is `i` modulo `BUDGETS`.
fn paging_manifests() -> String {
    let mut out = manifests(&[]);
    out += "\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: paging}\nstringData:\n";
    for k in 0..KEYS {
        out += &format!("  k{k}: sk-sb-paging-key-{k:04}-0123456789\n");
    }
    for k in 0..KEYS {
        out += &format!(
            "---\napiVersion: switchboard.dev/v1alpha1\nkind: ApiKey\nmetadata: {{name: page-{k:03}}}\n\
             spec: {{secretRef: {{name: paging, key: k{k}}}}}\n"
        );
    }
    for r in 0..ROUTES {
        out += &format!(
            "---\napiVersion: switchboard.dev/v1alpha1\nkind: ModelRoute\nmetadata: {{name: r-{r:03}}}\n\
             spec: {{model: paged/r-{r:03}, targets: [{{provider: mock, model: mock-chat}}]}}\n"
        );
    }
    for b in 0..BUDGETS {
        let keys: Vec<String> = (0..KEYS)
            .filter(|k| k % BUDGETS == b)
            .map(|k| format!("page-{k:03}"))
            .collect();
        out += &format!(
            "---\napiVersion: switchboard.dev/v1alpha1\nkind: Budget\nmetadata: {{name: b-{b:02}}}\n\
             spec: {{limitUSD: \"10\", window: monthly, scope: {{apiKeys: [{}]}}}}\n",
            keys.join(", ")
        );
    }
    out
}

async fn get(app: &axum::Router, uri: &str) -> String {
    let mut req = http::Request::get(uri).body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo("127.0.0.1:5000".parse::<SocketAddr>().unwrap()));
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200, "{uri}");
    let body = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

/// The values of `attr="…"` on a page, in order.
fn attrs(html: &str, attr: &str) -> Vec<String> {
    html.split(&format!("{attr}=\""))
        .skip(1)
        .map(|rest| rest.split_once('"').unwrap().0.to_string())
        .collect()
}

/// The target of the link with id `link`, unescaped (maud writes `&` as `&amp;`).
fn next(html: &str, link: &str) -> Option<String> {
    let (_, rest) = html.split_once(&format!("id=\"{link}\" href=\""))?;
    Some(rest.split_once('"').unwrap().0.replace("&amp;", "&"))
}

/// Follows "Next →" from `first`: each page's values of `attr`, and its range line.
async fn walk(app: &axum::Router, first: &str, attr: &str) -> Vec<(Vec<String>, String)> {
    walk_by(app, first, attr, "next-page", "page-range").await
}

/// Follows the links with id `link` from `first`: each page's values of `attr`, and the text of
/// the element with id `range`.
async fn walk_by(
    app: &axum::Router,
    first: &str,
    attr: &str,
    link: &str,
    range: &str,
) -> Vec<(Vec<String>, String)> {
    let mut pages = Vec::new();
    let mut uri = Some(first.to_string());
    while let Some(u) = uri {
        let html = get(app, &u).await;
        let shown = html
            .split_once(&format!("id=\"{range}\">"))
            .map(|(_, r)| r.split_once('<').unwrap().0.to_string())
            .unwrap_or_default();
        pages.push((attrs(&html, attr), shown));
        uri = next(&html, link);
        assert!(pages.len() <= 10, "no end to the pages");
    }
    pages
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_and_budgets_come_a_page_at_a_time() {
    let dir = scratch_dir("console-paging");
    let path = support::temp_manifest(&paging_manifests());
    let state = switchboard_router::state_from_manifests(&[path], Settings::default()).unwrap();
    let usage = switchboard_router::usage::start(&state.metrics, &state.usage, sqlite_usage(&dir))
        .await
        .unwrap();
    let app = admin_app(state.clone());
    let all_keys = state.runtime().unwrap().config.api_keys.len();
    assert!(all_keys > KEYS, "the shared manifests' keys too");

    let pages = walk(&app, "/console/keys", "data-key").await;
    let sizes: Vec<usize> = pages.iter().map(|(ids, _)| ids.len()).collect();
    assert_eq!(sizes, [100, 100, all_keys - 200]);
    assert_eq!(pages[0].1, format!("1–100 of {all_keys} keys"));
    assert_eq!(pages[1].1, format!("101–200 of {all_keys} keys"));
    let seen: Vec<String> = pages.into_iter().flat_map(|(ids, _)| ids).collect();
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "by key id");
    assert_eq!(
        seen.iter().collect::<BTreeSet<_>>().len(),
        all_keys,
        "every key once"
    );

    // A key's row names its budget (page-046 is covered by b-01 only).
    let html = get(&app, "/console/keys?after=default/page-045").await;
    let row = html
        .split_once("data-key=\"default/page-046\"")
        .unwrap()
        .1
        .split_once("</tr>")
        .unwrap()
        .0;
    assert!(row.contains("default/b-01"), "{row}");
    assert!(!row.contains("default/b-02"), "{row}");

    let pages = walk(&app, "/console/budgets", "data-budget").await;
    let sizes: Vec<usize> = pages.iter().map(|(ids, _)| ids.len()).collect();
    assert_eq!(sizes, [20, 20, 5]);
    assert_eq!(pages[2].1, "41–45 of 45 budgets");
    let seen: Vec<String> = pages.into_iter().flat_map(|(ids, _)| ids).collect();
    let want: Vec<String> = (0..BUDGETS).map(|b| format!("default/b-{b:02}")).collect();
    assert_eq!(seen, want);

    // Routes by model, a hundred to a page; a route's targets stay on its page.
    let pages = walk(&app, "/console/providers", "data-route").await;
    let mut seen: Vec<String> = Vec::new();
    for (routes, _) in &pages {
        let mut distinct = routes.clone();
        distinct.dedup();
        assert!(distinct.len() <= 100, "{}", distinct.len());
        seen.extend(distinct);
    }
    let all_routes = state.runtime().unwrap().config.routes.len();
    assert_eq!(all_routes, ROUTES + 3);
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0].1, format!("1–100 of {all_routes} routes"));
    assert_eq!(
        pages[1].1,
        format!("101–{all_routes} of {all_routes} routes")
    );
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "every route once, by model");
    assert_eq!(seen.len(), all_routes);

    // Objects by name, a hundred to a page, the routes' place kept in the link.
    let all_objects = state.runtime().unwrap().objects.len();
    assert!(all_objects > 2 * 100, "{all_objects}");
    let first = "/console/providers?after=paged/r-050";
    let pages = walk_by(&app, first, "data-object", "next-objects", "objects-range").await;
    let sizes: Vec<usize> = pages.iter().map(|(o, _)| o.len()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), all_objects);
    assert!(sizes.iter().all(|n| *n <= 100), "{sizes:?}");
    assert_eq!(pages[0].1, format!("1–100 of {all_objects} objects"));
    let seen: Vec<String> = pages.into_iter().flat_map(|(o, _)| o).collect();
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "every object once, by name");
    let html = get(&app, first).await;
    let objects_next = next(&html, "next-objects").unwrap();
    assert!(
        objects_next.contains("after=paged/r-050&objects_after="),
        "{objects_next}"
    );
    let second = get(&app, &objects_next).await;
    assert_eq!(
        attrs(&second, "data-route").first().map(String::as_str),
        Some("paged/r-051"),
        "the routes' page is kept"
    );

    usage.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
