//! The studio's pages: one layout, a body per page, the data filled in by
//! `assets/studio.js` from the same `/v1` API everyone else uses.
//!
//! A page is plain HTML that works on a phone: a skip link, a labelled
//! navigation that shows only what the viewer's key may use, one `<main>`
//! with one `<h1>`. The bodies are compiled into the binary (`pages/*.html`).

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::session;
use crate::api::ApiState;
use crate::api::error::ApiError;
use crate::domain::JobId;
use crate::error_code as codes;
use crate::store::records::{ApiKeyRecord, Scope};

/// Who looks at a page, and what their key lets them do.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// None when the server runs without keys: everything is open.
    key: Option<ApiKeyRecord>,
}

impl Viewer {
    /// Anyone, on a server without keys.
    pub fn open() -> Self {
        Self { key: None }
    }

    /// The holder of `key`.
    pub fn of(key: ApiKeyRecord) -> Self {
        Self { key: Some(key) }
    }

    /// Whether the viewer may use what needs `scope`.
    pub fn can(&self, scope: Scope) -> bool {
        self.key.as_ref().is_none_or(|k| k.allows(scope))
    }

    /// The scopes, as `data-scopes` tells the page script.
    fn scopes(&self) -> String {
        match &self.key {
            None => "all".into(),
            Some(k) => Scope::join(&k.scopes),
        }
    }
}

/// The studio's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    New,
    Ideas,
    Jobs,
    Job,
    Review,
    Batches,
    Accounts,
    Keys,
    System,
    Performance,
}

impl Page {
    /// The pages in the navigation, in its order.
    const NAV: [Page; 9] = [
        Page::New,
        Page::Ideas,
        Page::Jobs,
        Page::Review,
        Page::Performance,
        Page::Batches,
        Page::Accounts,
        Page::Keys,
        Page::System,
    ];

    fn path(self) -> &'static str {
        match self {
            Page::New => "/",
            Page::Ideas => "/ideas",
            Page::Jobs | Page::Job => "/jobs",
            Page::Review => "/review",
            Page::Batches => "/batches",
            Page::Accounts => "/accounts",
            Page::Keys => "/keys",
            Page::System => "/system",
            Page::Performance => "/performance",
        }
    }

    fn id(self) -> &'static str {
        match self {
            Page::New => "new",
            Page::Ideas => "ideas",
            Page::Jobs => "jobs",
            Page::Job => "job",
            Page::Review => "review",
            Page::Batches => "batches",
            Page::Accounts => "accounts",
            Page::Keys => "keys",
            Page::System => "system",
            Page::Performance => "performance",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Page::New => "New video",
            Page::Ideas => "Ideas from a page",
            Page::Jobs => "Jobs",
            Page::Job => "Job",
            Page::Review => "Review",
            Page::Batches => "Batches",
            Page::Accounts => "Accounts",
            Page::Keys => "API keys",
            Page::System => "System",
            Page::Performance => "Performance",
        }
    }

    /// The scope a page needs to be of any use.
    fn needs(self) -> Scope {
        match self {
            Page::New | Page::Ideas | Page::Batches => Scope::JobsWrite,
            Page::Jobs | Page::Job | Page::Performance => Scope::JobsRead,
            Page::Review => Scope::JobsReview,
            Page::Accounts => Scope::Accounts,
            Page::Keys | Page::System => Scope::Admin,
        }
    }

    fn body(self) -> String {
        let body = match self {
            Page::New => include_str!("pages/new.html"),
            Page::Ideas => include_str!("pages/ideas.html"),
            Page::Jobs => include_str!("pages/jobs.html"),
            Page::Job => return with_composer(include_str!("pages/job.html")),
            Page::Review => include_str!("pages/review.html"),
            Page::Batches => include_str!("pages/batches.html"),
            Page::Accounts => include_str!("pages/accounts.html"),
            Page::Keys => include_str!("pages/keys.html"),
            Page::System => include_str!("pages/system.html"),
            // Rendered on the server per request (see `performance`).
            Page::Performance => "",
        };
        body.to_string()
    }
}

/// A job page with the Direct Post composer put where it says
/// `<!-- composer -->` (the studio's job page and a reviewer link's page
/// both have it; the script shows it only for a Direct Post's video review).
fn with_composer(page: &str) -> String {
    page.replace("<!-- composer -->", include_str!("pages/composer.html"))
}

/// Text made safe inside HTML text and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: `body_attrs` are already-escaped `name="value"` pairs for `<body>`.
fn layout(title: &str, page_id: &str, nav: &str, body_attrs: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} · clipforge studio</title>\n\
         <link rel=\"stylesheet\" href=\"/assets/studio.css\">\n\
         <script src=\"/assets/studio.js\" defer></script>\n</head>\n\
         <body data-page=\"{page_id}\"{body_attrs}>\n\
         <a class=\"skip\" href=\"#main\">Skip to content</a>\n\
         <header class=\"top\"><a class=\"brand\" href=\"/\">clipforge <span>studio</span></a>{nav}</header>\n\
         <main id=\"main\" tabindex=\"-1\">\n<h1>{title}</h1>\n{body}\n</main>\n</body>\n</html>\n",
        title = escape(title),
    )
}

fn nav(current: Page, viewer: &Viewer, signed_in: bool) -> String {
    let mut links = String::new();
    for page in Page::NAV.into_iter().filter(|p| viewer.can(p.needs())) {
        let here =
            if page == current || (current == Page::Job && page == Page::Jobs) { " aria-current=\"page\"" } else { "" };
        links.push_str(&format!("<li><a href=\"{}\"{here}>{}</a></li>", page.path(), page.title()));
    }
    let signout = if signed_in {
        "<form method=\"post\" action=\"/signout\" class=\"signout\"><button type=\"submit\">Sign out</button></form>"
    } else {
        ""
    };
    format!("<nav aria-label=\"Studio\"><ul>{links}</ul></nav>{signout}")
}

/// Answers a page for the request's viewer: the sign-in page when they have
/// no session, a note when their key lacks the page's scope.
async fn render(state: &ApiState, headers: &HeaderMap, uri: &str, page: Page, attrs: &str) -> Response {
    render_with(state, headers, uri, page, attrs, |_| async { (StatusCode::OK, page.body()) }).await
}

/// [`render`] with a body made per request for a viewer who may see the page.
async fn render_with<F, Fut>(
    state: &ApiState,
    headers: &HeaderMap,
    uri: &str,
    page: Page,
    attrs: &str,
    body: F,
) -> Response
where
    F: FnOnce(Viewer) -> Fut,
    Fut: std::future::Future<Output = (StatusCode, String)>,
{
    let viewer = match session::viewer(state, headers).await {
        Ok(Some(viewer)) => viewer,
        Ok(None) => return Redirect::to(&format!("/signin?next={}", urlencode(uri))).into_response(),
        Err(e) => return ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e).into_response(),
    };
    let signed_in = state.auth.require_keys();
    let nav = nav(page, &viewer, signed_in);
    let scopes = format!(" data-scopes=\"{}\"{attrs}", escape(&viewer.scopes()));
    let (status, body) = if viewer.can(page.needs()) {
        body(viewer).await
    } else {
        let note = format!(
            "<p class=\"notice\" role=\"alert\">Your key lacks the <code>{}</code> scope this page needs. \
             Ask an operator for a key that has it.</p>",
            page.needs()
        );
        (StatusCode::FORBIDDEN, note)
    };
    html(status, layout(page.title(), page.id(), &nav, &scopes, &body))
}

fn html(status: StatusCode, page: String) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store"), (header::X_FRAME_OPTIONS, "DENY")],
        [(header::HeaderName::from_static("content-security-policy"), CSP)],
        Html(page),
    )
        .into_response()
}

/// Scripts and styles from this server only, no inline script, no framing.
const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: https:; \
                   object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self' https:";

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

macro_rules! page_handler {
    ($($name:ident => $page:expr),* $(,)?) => {$(
        pub async fn $name(State(state): State<ApiState>, headers: HeaderMap, OriginalUri(uri): OriginalUri) -> Response {
            render(&state, &headers, &uri.to_string(), $page, "").await
        }
    )*};
}

page_handler! {
    new_video => Page::New,
    ideas => Page::Ideas,
    jobs => Page::Jobs,
    review => Page::Review,
    batches => Page::Batches,
    accounts => Page::Accounts,
    keys => Page::Keys,
    system => Page::System,
}

/// `GET /jobs/{id}`: one job's page.
pub async fn job(
    State(state): State<ApiState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = JobId::parse(&id) else {
        return ApiError::not_found(&id).into_response();
    };
    render(&state, &headers, &uri.to_string(), Page::Job, &format!(" data-job=\"{}\"", escape(id.as_str()))).await
}

/// `GET /performance`: TikTok posts grouped by topic, style, voice or
/// account (each counted by its latest sample) and each account's totals,
/// rendered here: a form that submits with GET and two tables.
pub async fn performance(
    State(state): State<ApiState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let uri = uri.to_string();
    render_with(&state, &headers, &uri, Page::Performance, "", |_| performance_body(&state, q)).await
}

async fn performance_body(state: &ApiState, q: std::collections::HashMap<String, String>) -> (StatusCode, String) {
    use crate::api::performance::{GroupQuery, parse_query, report_of};
    use crate::performance::GroupBy;
    let query = GroupQuery {
        group_by: q.get("group_by").filter(|s| !s.is_empty()).cloned(),
        since: q.get("since").filter(|s| !s.is_empty()).cloned(),
    };
    let chosen = query.group_by.clone().unwrap_or_else(|| "account".into());
    let mut options = String::new();
    for g in GroupBy::ALL {
        let selected = if g.as_str() == chosen { " selected" } else { "" };
        options.push_str(&format!("<option value=\"{0}\"{selected}>{0}</option>", g.as_str()));
    }
    let form = format!(
        "<form method=\"get\" action=\"/performance\" class=\"stack\">\
         <label for=\"perf-group\">Group by</label><select id=\"perf-group\" name=\"group_by\">{options}</select>\
         <label for=\"perf-since\">Posted since (RFC 3339, optional)</label>\
         <input id=\"perf-since\" name=\"since\" value=\"{}\" placeholder=\"2026-03-01T00:00:00Z\" \
          aria-describedby=\"perf-help\" spellcheck=\"false\">\
         <button type=\"submit\">Show</button></form>\
         <p id=\"perf-help\" class=\"help\">Each post counts with its latest sample from TikTok. Drafts count \
         only once the creator has posted them publicly and TikTok names the post.</p>",
        escape(query.since.as_deref().unwrap_or_default())
    );
    let (by, since) = match parse_query(&query) {
        Ok(v) => v,
        Err(e) => {
            let alert = format!("<p class=\"error\" role=\"alert\">{}</p>", escape(&e.message));
            return (StatusCode::UNPROCESSABLE_ENTITY, format!("{alert}{form}"));
        }
    };
    let report = match report_of(state, by, since).await {
        Ok(r) => r,
        Err(e) => {
            let alert = format!(
                "<p class=\"error\" role=\"alert\">The record store cannot be read: {}</p>",
                escape(&e.to_string())
            );
            return (StatusCode::SERVICE_UNAVAILABLE, format!("{alert}{form}"));
        }
    };
    let names: std::collections::HashMap<String, String> = state
        .pipeline
        .records
        .list_accounts()
        .await
        .map(|all| all.into_iter().map(|a| (a.id, a.display_name)).collect())
        .unwrap_or_default();
    let account_name = |id: &str| match names.get(id) {
        Some(name) => format!("{} ({id})", name),
        None => id.to_string(),
    };
    let mut rows = String::new();
    for g in &report.groups {
        let name = if by == GroupBy::Account { account_name(&g.group) } else { g.group.clone() };
        rows.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&name),
            g.posts,
            g.views,
            g.likes,
            g.comments,
            g.shares
        ));
    }
    let groups = if report.groups.is_empty() {
        "<p id=\"perf-empty\">No post has been measured yet.</p>".to_string()
    } else {
        format!(
            "<div class=\"table-wrap\"><table id=\"perf-table\"><caption>Posts by {}</caption>\
             <thead><tr><th scope=\"col\">{}</th><th scope=\"col\">Posts</th><th scope=\"col\">Views</th>\
             <th scope=\"col\">Likes</th><th scope=\"col\">Comments</th><th scope=\"col\">Shares</th></tr></thead>\
             <tbody>{rows}</tbody></table></div>",
            by.as_str(),
            by.as_str()
        )
    };
    let mut totals = String::new();
    for a in &report.accounts {
        totals.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td><time datetime=\"{}\">{}</time></td></tr>",
            escape(&account_name(&a.account)),
            a.followers,
            a.likes,
            a.videos,
            a.sampled_at.to_rfc3339(),
            a.sampled_at.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    let accounts = if report.accounts.is_empty() {
        String::new()
    } else {
        format!(
            "<h2 id=\"perf-accounts-h\">Accounts</h2><div class=\"table-wrap\"><table id=\"perf-accounts\" \
             aria-labelledby=\"perf-accounts-h\"><thead><tr><th scope=\"col\">Account</th><th scope=\"col\">Followers</th>\
             <th scope=\"col\">Likes</th><th scope=\"col\">Videos</th><th scope=\"col\">Measured</th></tr></thead>\
             <tbody>{totals}</tbody></table></div>"
        )
    };
    (StatusCode::OK, format!("{form}{groups}{accounts}"))
}

/// The sign-in page, with `error` shown above the form.
pub fn signin(next: &str, error: Option<&str>, status: StatusCode) -> Response {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\" id=\"signin-error\">{}</p>", escape(e)))
        .unwrap_or_default();
    let body = format!(
        "{error}<form method=\"post\" action=\"/signin\" class=\"stack\">\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\
         <label for=\"key\">API key</label>\
         <input id=\"key\" name=\"key\" type=\"password\" autocomplete=\"current-password\" required \
          aria-describedby=\"key-help\" spellcheck=\"false\">\
         <p id=\"key-help\" class=\"help\">Paste a key made with <code>clipforge keys create</code>. \
          It is checked once; the browser then keeps a session cookie, not the key.</p>\
         <button type=\"submit\">Sign in</button></form>",
        next = escape(next)
    );
    html(status, layout("Sign in", "signin", "", "", &body))
}

/// The page a reviewer link opens: one job, no navigation.
pub fn reviewer(token: &str, job: &JobId) -> Response {
    let attrs = format!(" data-link=\"{}\" data-job=\"{}\"", escape(token), escape(job.as_str()));
    html(
        StatusCode::OK,
        layout("Review a video", "reviewer", "", &attrs, &with_composer(include_str!("pages/reviewer.html"))),
    )
}

/// A refused reviewer link, said plainly.
pub fn link_refused(why: &str) -> Response {
    let body = format!("<p class=\"error\" role=\"alert\">{}</p>", escape(why));
    html(StatusCode::FORBIDDEN, layout("Review a video", "reviewer-refused", "", "", &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cannot_become_markup() {
        assert_eq!(escape("<script>\"x\"&'y'</script>"), "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;");
    }

    #[test]
    fn the_navigation_shows_what_the_key_may_use() {
        let key = |scopes: Vec<Scope>| {
            Viewer::of(ApiKeyRecord {
                id: "k".into(),
                name: "n".into(),
                scopes,
                created_at: chrono::Utc::now(),
                last_used_at: None,
                revoked_at: None,
                requests: 0,
                notify: None,
            })
        };
        let reader = nav(Page::Jobs, &key(vec![Scope::JobsRead]), true);
        assert!(reader.contains("href=\"/jobs\" aria-current=\"page\""), "{reader}");
        assert!(!reader.contains("/keys") && !reader.contains("href=\"/\"") && reader.contains("Sign out"));
        let admin = nav(Page::New, &key(vec![Scope::Admin]), true);
        for page in Page::NAV {
            assert!(admin.contains(&format!("href=\"{}\"", page.path())), "{page:?}");
        }
        assert!(!nav(Page::New, &Viewer::open(), false).contains("Sign out"));
    }

    #[test]
    fn the_return_path_is_encoded() {
        assert_eq!(urlencode("/jobs?state=failed&q=a b"), "/jobs%3Fstate%3Dfailed%26q%3Da%20b");
    }
}
