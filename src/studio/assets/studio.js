// clipforge studio: the page script. No framework and no build step: each
// page's body is server HTML; this fills it from the same /v1 API every
// client uses (the session cookie signs the requests in) and follows jobs
// live over GET /v1/events (server-sent events).
"use strict";

const $ = (id) => document.getElementById(id);
const page = document.body.dataset.page;
const jobId = document.body.dataset.job;
const link = document.body.dataset.link;

/** Calls the API; answers {ok, status, body}. A 401 from a page sends the viewer to sign in. */
async function api(method, path, body, contentType) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = contentType || "application/json";
    init.body = contentType ? body : JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    return { ok: false, status: 0, body: { error: { code: "network", message: "The server could not be reached; try again." } } };
  }
  if (res.status === 401 && !link) {
    location.href = "/signin?next=" + encodeURIComponent(location.pathname + location.search);
  }
  const type = res.headers.get("content-type") || "";
  const data = type.includes("json") ? await res.json() : await res.text();
  return { ok: res.ok, status: res.status, body: data };
}

function text(el, value) {
  if (el) el.textContent = value == null ? "" : String(value);
}

function show(el, visible) {
  if (el) el.hidden = !visible;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c == null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString();
}

function stateBadge(state) {
  return el("span", { class: "state state-" + state, "data-state": state }, state.replace("_", " "));
}

/** The message of an error answer, as the API gives it. */
function message(res) {
  const e = res.body && res.body.error;
  return e ? e.message + " (" + e.code + ")" : "The server answered " + res.status + ".";
}

/** Shows an error answer's per-field details beside the fields they name (ids err-<field>). */
function showFieldErrors(res, prefix, formError) {
  document.querySelectorAll("[id^='err-']").forEach((p) => { p.hidden = true; p.textContent = ""; });
  document.querySelectorAll("[aria-invalid]").forEach((i) => i.removeAttribute("aria-invalid"));
  const e = (res.body && res.body.error) || {};
  const unplaced = [];
  for (const d of e.details || []) {
    const base = d.field.split(/[.[]/)[0];
    const box = $("err-" + (prefix || "") + d.field) || $("err-" + (prefix || "") + base);
    if (box) {
      box.textContent = box.hidden ? d.message : box.textContent + " " + d.message;
      box.hidden = false;
      const input = $((prefix || "") + base) || document.querySelector("[aria-describedby~='" + box.id + "']");
      if (input) input.setAttribute("aria-invalid", "true");
    } else {
      unplaced.push(d.field + ": " + d.message);
    }
  }
  if (formError) {
    const lines = (e.details || []).length ? unplaced : [message(res)];
    // The form's box may be a field's box too (a review's note): keep what was placed there.
    const placed = formError.hidden ? "" : formError.textContent;
    text(formError, [placed, ...lines].filter(Boolean).join(" "));
    show(formError, !!placed || lines.length > 0);
  }
  const first = document.querySelector("[aria-invalid='true']");
  if (first) first.focus();
}

/** Follows /v1/events (optionally filtered); the browser resumes with Last-Event-ID by itself. */
function follow(query, handlers, status) {
  if (!window.EventSource) return null;
  const source = new EventSource("/v1/events" + (query ? "?" + query : ""));
  source.addEventListener("state", (ev) => handlers.state && handlers.state(JSON.parse(ev.data)));
  source.addEventListener("progress", (ev) => handlers.progress && handlers.progress(JSON.parse(ev.data)));
  source.onopen = () => text(status, "Live: updates appear as they happen.");
  source.onerror = () => text(status, "Reconnecting to live updates…");
  return source;
}

// ---- New video -------------------------------------------------------------

async function newVideo() {
  const form = $("new-job");
  const modes = document.querySelectorAll("input[name=mode]");
  const setMode = () => {
    const mode = document.querySelector("input[name=mode]:checked").value;
    document.querySelectorAll("[data-mode]").forEach((d) => { d.hidden = d.dataset.mode !== mode; });
  };
  modes.forEach((m) => m.addEventListener("change", setMode));
  const accounts = await api("GET", "/v1/accounts");
  if (accounts.ok) {
    for (const a of accounts.body.accounts || []) {
      // Each platform's accounts in its own list: TikTok's account, the other targets.
      const list = a.platform && a.platform !== "tiktok" ? $("target-" + a.platform) : $("account");
      if (list) list.append(el("option", { value: a.id }, a.display_name + " (" + a.status + ")"));
    }
  }
  await captionStyles();
  // "Re-render with changes": the form starts from another job's request.
  const from = new URLSearchParams(location.search).get("from");
  if (from) {
    const prior = await api("GET", "/v1/jobs/" + encodeURIComponent(from));
    if (prior.ok) fill(prior.body.spec);
  }
  setMode();
  $("hear-voice").addEventListener("click", hearVoice);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = $("submit-job");
    button.disabled = true;
    const res = await api("POST", "/v1/jobs", request());
    button.disabled = false;
    if (res.ok) {
      location.href = "/jobs/" + res.body.job_id;
    } else {
      showFieldErrors(res, "", $("err-form"));
    }
  });
}

/** Fills the caption style select from GET /v1/styles; the still follows the choice. */
async function captionStyles() {
  const select = $("caption_style");
  const res = await api("GET", "/v1/styles");
  const styles = res.ok ? res.body.styles || [] : [];
  for (const s of styles) {
    select.append(el("option", { value: s.name }, s.name + (s.default ? " (the team's default)" : "")));
  }
  const show = () => {
    const chosen = styles.find((s) => s.name === select.value) || styles.find((s) => s.default);
    if (!chosen) return;
    $("caption-style-preview").src = chosen.preview;
    text($("caption-style-help"), chosen.description);
  };
  select.addEventListener("change", show);
  show();
}

function fill(spec) {
  if (spec.topic) {
    $("mode-topic").checked = true;
    $("topic").value = spec.topic;
    if (spec.target_length_s) $("target_length_s").value = spec.target_length_s;
  } else {
    $("script").value = spec.script || "";
  }
  $("voice").value = spec.voice || "";
  $("footage_queries").value = (spec.footage_queries || []).join(", ");
  $("captions").checked = spec.captions !== false;
  if (spec.music) {
    $("music_track").value = spec.music.track;
    if (spec.music.volume != null) $("music_volume").value = spec.music.volume;
  }
  if (spec.review) $("review").value = spec.review;
  if (spec.caption_style && spec.caption_style.preset) $("caption_style").value = spec.caption_style.preset;
}

/** The job request the form describes: only what was filled in, so the API's defaults apply. */
function request() {
  const req = {};
  const mode = document.querySelector("input[name=mode]:checked").value;
  if (mode === "script") req.script = $("script").value;
  else {
    req.topic = $("topic").value;
    const len = $("target_length_s").value;
    if (len !== "") req.target_length_s = Number(len);
  }
  if ($("voice").value.trim()) req.voice = $("voice").value.trim();
  const hints = $("footage_queries").value.split(",").map((s) => s.trim()).filter(Boolean);
  if (hints.length) req.footage_queries = hints;
  req.captions = $("captions").checked;
  if ($("music_track").value.trim()) {
    req.music = { track: $("music_track").value.trim() };
    if ($("music_volume").value !== "") req.music.volume = Number($("music_volume").value);
  }
  if ($("account").value) req.account = $("account").value;
  const targets = ["youtube", "instagram"].filter((p) => $("target-" + p).value)
    .map((p) => ({ platform: p, account: $("target-" + p).value }));
  if (targets.length) req.targets = targets;
  if ($("review").value) req.review = $("review").value;
  if ($("caption_style").value) req.caption_style = { preset: $("caption_style").value };
  return req;
}

async function hearVoice() {
  // The first sentence of the script; without one, the voice says a sentence of its own language.
  const script = $("script").value.trim();
  const body = script ? { text: script.split(/(?<=[.!?。！？])\s*/)[0].slice(0, 300) } : {};
  const button = $("hear-voice");
  button.disabled = true;
  let voice = $("voice").value.trim();
  if (!voice) {
    const list = await fetch("/v1/voices", { credentials: "same-origin" }).then((r) => r.json()).catch(() => ({}));
    voice = list.default_voice || "";
  }
  const res = await fetch("/v1/voices/" + encodeURIComponent(voice) + "/preview", {
    method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  button.disabled = false;
  if (!res.ok) {
    const data = await res.json().catch(() => ({}));
    showFieldErrors({ status: res.status, body: data }, "", $("err-form"));
    return;
  }
  const audio = $("voice-sample");
  audio.src = URL.createObjectURL(await res.blob());
  audio.hidden = false;
  audio.play().catch(() => {});
}

// ---- Jobs ------------------------------------------------------------------

async function jobs() {
  const params = new URLSearchParams(location.search);
  $("filter-state").value = params.get("state") || "";
  $("filter-q").value = params.get("q") || "";
  const query = new URLSearchParams();
  for (const k of ["state", "q", "before"]) if (params.get(k)) query.set(k, params.get(k));
  query.set("limit", "50");
  const res = await api("GET", "/v1/jobs?" + query);
  const body = $("job-table").tBodies[0];
  if (!res.ok) {
    text($("live-status"), message(res));
    return;
  }
  for (const j of res.body.jobs) body.append(jobRow(j));
  show($("jobs-empty"), res.body.jobs.length === 0);
  if (res.body.next) {
    const older = new URLSearchParams(query);
    older.set("before", res.body.next);
    older.delete("limit");
    $("jobs-older").href = "/jobs?" + older;
    show($("jobs-older"), true);
  }
  show($("jobs-newest"), params.has("before"));
  follow("", {
    state: (ev) => {
      const row = body.querySelector("[data-job='" + ev.job_id + "']");
      if (row) {
        row.querySelector(".cell-state").replaceChildren(stateBadge(ev.state), " ", ev.stage || "");
      } else if (!params.has("before") && (!params.get("state") || params.get("state") === ev.state) && !params.get("q") && ev.state === "queued") {
        api("GET", "/v1/jobs/" + ev.job_id).then((r) => { if (r.ok) body.prepend(jobRow(r.body)); show($("jobs-empty"), false); });
      }
    },
    progress: (ev) => {
      const row = body.querySelector("[data-job='" + ev.job_id + "']");
      if (row) {
        const bar = row.querySelector("progress");
        bar.value = ev.percent;
        bar.setAttribute("aria-label", "Progress of " + ev.stage + ": " + ev.percent + "%");
      }
    },
  }, $("live-status"));
}

function jobRow(j) {
  const label = (j.spec.script || j.spec.topic || "").slice(0, 80);
  const bar = el("progress", { max: "100", value: String(j.progress), "aria-label": "Progress: " + j.progress + "%" });
  return el("tr", { "data-job": j.id },
    el("td", {}, el("a", { href: "/jobs/" + j.id }, label || j.id), el("br"), el("small", {}, j.id.slice(0, 8))),
    el("td", { class: "cell-state" }, stateBadge(j.state), " ", j.stage || ""),
    el("td", {}, bar),
    el("td", {}, when(j.created_at)));
}

// ---- One job ---------------------------------------------------------------

const jobBase = () => (link ? "/r/" + link : "/v1/jobs/" + jobId);

async function job() {
  await loadJob();
  // A reviewer link carries no key for the event stream; its page loads again after each action.
  if (!link) follow("job_id=" + encodeURIComponent(jobId), {
    state: () => loadJob(),
    progress: (ev) => {
      $("job-progress").value = ev.percent;
      text($("job-stage"), ev.stage);
    },
  }, $("act-message"));
  wireActions();
}

let current = null;

async function loadJob() {
  const res = await api("GET", link ? "/r/" + link + "/job" : "/v1/jobs/" + jobId);
  if (!res.ok) {
    text($("act-message"), message(res));
    return;
  }
  const j = (current = res.body);
  document.title = (j.spec.script || j.spec.topic || j.id).slice(0, 40) + " · clipforge studio";
  $("job-state").replaceWith(Object.assign(stateBadge(j.state), { id: "job-state" }));
  text($("job-stage"), j.stage || "");
  const bar = $("job-progress");
  if (bar) bar.value = j.progress;
  if ($("job-error")) {
    show($("job-error"), !!j.error);
    if (j.error) {
      text($("job-error-stage"), j.error.stage);
      text($("job-error-code"), j.error.code);
      text($("job-error-message"), j.error.message);
      text($("job-error-hint"), j.error_hint || (j.error.retryable ? "Retry the job." : "Change the request and submit it again."));
    }
    show($("job-waiting"), !!j.waiting);
    text($("job-waiting"), j.waiting ? "Waiting: " + j.waiting + (j.retry_at ? " (tries again " + when(j.retry_at) + ")" : "") : "");
  }
  // Staged, or rendered and waiting for its review.
  const render = j.state === "in_review" && j.manifest && j.manifest.render;
  const video = (j.outputs && j.outputs.video) || (render ? Object.assign({ expires_at: null }, render) : null);
  show($("video-box"), !!video);
  if (video) {
    const player = $("job-video");
    const src = link ? "/r/" + link + "/video" : "/v1/jobs/" + j.id + "/video";
    if (player.getAttribute("src") !== src) player.setAttribute("src", src);
    text($("video-facts"), video.width + "×" + video.height + ", " + video.duration_s.toFixed(1) + " s, " +
      (video.bytes / 1e6).toFixed(1) + " MB" + (video.expires_at ? "; kept until " + when(video.expires_at) : "; not staged yet"));
  }
  const m = j.manifest || {};
  // A photo post's stills, as TikTok pulls them (the open /p/ route).
  const photos = m.photos || [];
  show($("photos-box"), photos.length > 0);
  if (photos.length && $("job-photos").children.length !== photos.length) {
    const said = (m.script && m.script.sentences) || [];
    $("job-photos").replaceChildren(...photos.map((p, i) => el("li", {},
      el("img", { src: "/p/" + j.id + "/" + (i + 1) + ".jpg", alt: "Photo " + (i + 1) + ": " + (said[i] || ""), loading: "lazy", width: "180", height: "320" }))));
  }
  show($("script-box"), !!m.script);
  if (m.script) {
    $("job-script").replaceChildren(...m.script.sentences.map((s) => el("p", {}, s)));
    if ($("job-words") && m.narration) {
      text($("job-words"), m.narration.words.map((w) => w.text + " " + w.start_s.toFixed(2) + "s").join(" · "));
    }
  }
  if ($("footage-box")) {
    show($("footage-box"), !!(m.footage && m.footage.length));
    $("job-footage").replaceChildren(...(m.footage || []).map((f) => el("li", {},
      f.source + ", " + f.at_s.toFixed(1) + "–" + (f.at_s + f.duration_s).toFixed(1) + " s",
      f.credit ? [" — ", el("a", { href: f.credit.page_url, rel: "noopener" }, f.credit.creator), " (" + f.credit.license + ")"] : "")));
  }
  if ($("perf-box")) {
    const p = j.performance;
    show($("perf-box"), !!p);
    if (p) {
      text($("perf-note"), p.note || ("Post " + p.post_id + ": " + p.samples + " sample" + (p.samples === 1 ? "" : "s") + " so far."));
      const l = p.latest;
      $("perf-latest").replaceChildren(...(l ? [
        el("dt", {}, "Views"), el("dd", {}, l.views),
        el("dt", {}, "Likes"), el("dd", {}, l.likes),
        el("dt", {}, "Comments"), el("dd", {}, l.comments),
        el("dt", {}, "Shares"), el("dd", {}, l.shares),
        el("dt", {}, "Measured"), el("dd", {}, el("time", { datetime: l.sampled_at }, when(l.sampled_at)))] : []));
      $("perf-all").setAttribute("href", "/v1/jobs/" + j.id + "/performance");
    }
  }
  if ($("job-costs")) {
    const c = j.costs || {};
    $("job-costs").replaceChildren(
      el("dt", {}, "LLM tokens"), el("dd", {}, (c.llm_prompt_tokens || 0) + " in, " + (c.llm_completion_tokens || 0) + " out"),
      el("dt", {}, "Narrated characters"), el("dd", {}, c.tts_characters || 0),
      el("dt", {}, "Pexels requests"), el("dd", {}, c.pexels_requests || 0),
      el("dt", {}, "Render"), el("dd", {}, (c.render_seconds || 0).toFixed(1) + " s"));
  }
  if ($("job-history")) {
    $("job-history").replaceChildren(...(j.events || []).map((e) => el("li", {},
      el("time", { datetime: e.at }, when(e.at)), " ", stateBadge(e.state), e.stage ? " " + e.stage : "",
      e.attempt ? " (delivery " + e.attempt + ")" : "", e.note ? " — " + e.note : "",
      e.error ? " — " + e.error.code + ": " + e.error.message : "")));
  }
  showActions(j);
}

function showActions(j) {
  const terminal = ["staged", "in_inbox", "posted", "failed", "cancelled"].includes(j.state);
  show($("review-box"), j.state === "in_review");
  // A Direct Post's video is approved only through the composer, with the poster's choices.
  const composing = j.state === "in_review" && (j.review && j.review.waiting_at) === "video" && j.spec.post_mode === "direct";
  show($("act-approve"), !composing);
  if ($("post-box")) {
    show($("post-box"), composing);
    if (composing && !composer.loaded) loadComposer(j);
  }
  const draft = j.manifest && j.manifest.tiktok;
  if ($("job-posted")) {
    show($("job-posted"), j.state === "posted");
    if (j.state === "posted") {
      text($("job-posted"), draft && draft.post_id ? "Posted on TikTok. Post id: " + draft.post_id :
        "Posted on TikTok. TikTok tells the public post id after its moderation (never for a post only the creator sees).");
    }
  }
  const targets = (j.manifest && j.manifest.targets) || [];
  if ($("job-targets")) {
    show($("job-targets"), targets.length > 0);
    const names = { youtube: "YouTube", instagram: "Instagram" };
    $("job-targets").replaceChildren(...targets.map((t) => el("li", {},
      "Published on " + (names[t.platform] || t.platform) + (t.remote_id ? " (" + t.remote_id + ")" : "") + " ",
      t.url ? el("a", { href: t.url, rel: "noopener" }, "Open") : null)));
  }
  if (j.state === "in_review" && $("review-what")) {
    text($("review-what"), (j.review && j.review.waiting_at) === "video" ? "The video is rendered and waits for approval before it is published." :
      "The script, narration and footage picks wait for approval before the render.");
  }
  if (link) return;
  show($("act-retry"), j.state === "failed");
  show($("act-cancel"), !terminal);
  show($("act-download"), !!(j.outputs && j.outputs.video));
  if (j.outputs && j.outputs.video) $("act-download").href = "/v1/jobs/" + j.id + "/video";
  show($("act-rerender"), terminal);
  $("act-rerender").href = "/?from=" + j.id;
  show($("act-link"), j.state === "in_review");
  show($("act-purge"), terminal && can("admin"));
  show($("revise-box"), j.state === "changes_requested");
  if (j.state === "changes_requested") {
    const sentBack = (j.review && j.review.decisions || []).filter((d) => d.verdict === "changes_requested").pop();
    text($("revise-note"), sentBack ? "Sent back by " + sentBack.by + ": " + (sentBack.note || "") : "Sent back.");
    if (!$("revise-script").value) $("revise-script").value = j.spec.script || (m0(j).script ? m0(j).script.sentences.join(" ") : "");
    if (!$("revise-voice").value) $("revise-voice").value = j.spec.voice || "";
  }
}

const m0 = (j) => j.manifest || {};

// ---- Direct Post composer (TikTok's content-sharing guidelines; docs/tiktok-direct-post.md) ----

const PRIVACY_LABELS = {
  PUBLIC_TO_EVERYONE: "Everyone",
  MUTUAL_FOLLOW_FRIENDS: "Friends (followers you follow back)",
  FOLLOWER_OF_CREATOR: "Followers",
  SELF_ONLY: "Only me",
};
const composer = { loaded: false };

async function loadComposer(j) {
  composer.loaded = true;
  const res = await api("GET", link ? "/r/" + link + "/creator" : "/v1/jobs/" + j.id + "/creator");
  if (!res.ok) {
    text($("post-unavailable"), "TikTok could not say what this creator may choose, so the video cannot be posted now: " + message(res));
    show($("post-unavailable"), true);
    composer.loaded = false;
    return;
  }
  const c = res.body;
  text($("post-nickname"), c.creator_nickname || c.account);
  text($("post-username"), c.creator_username ? "(@" + c.creator_username + ")" : "");
  // No privacy level is chosen for the person: TikTok's guidelines ask for no default.
  $("post-privacy-options").replaceChildren(...c.privacy_level_options.map((o) => el("label", {},
    el("input", { type: "radio", name: "post-privacy", value: o, id: "post-privacy-" + o }), " ", PRIVACY_LABELS[o] || o)));
  const disabled = [];
  // Photo posts have no Duet or Stitch: TikTok's guidelines say not to show them.
  const photos = j.spec.format === "photos";
  for (const box of ["post-duet", "post-stitch"]) show($(box).parentElement, !photos);
  for (const [box, off, what] of [["post-comment", c.comment_disabled, "comments"], ["post-duet", c.duet_disabled, "Duet"], ["post-stitch", c.stitch_disabled, "Stitch"]]) {
    $(box).checked = false;
    $(box).disabled = off;
    if (off && !(photos && box !== "post-comment")) disabled.push(what);
  }
  show($("post-disabled-note"), disabled.length > 0);
  text($("post-disabled-note"), disabled.length ? "The creator turned off " + disabled.join(", ") + " in TikTok." : "");
  $("post-aigc").checked = !!c.aigc_suggested;
  show($("post-form"), true);
  composerChanged();
}

function composerChanged() {
  const disclose = $("post-disclose").checked;
  show($("post-brand"), disclose);
  if (!disclose) { $("post-your-brand").checked = false; $("post-branded").checked = false; }
  const yours = $("post-your-brand").checked, branded = $("post-branded").checked;
  // Branded content cannot be private.
  const selfOnly = $("post-privacy-SELF_ONLY");
  if (selfOnly) {
    selfOnly.disabled = branded;
    selfOnly.title = branded ? "Branded content visibility cannot be set to private." : "";
    if (branded && selfOnly.checked) selfOnly.checked = false;
  }
  show($("post-brand-need"), disclose && !yours && !branded);
  text($("post-label"), branded ? "Your video will be labeled as 'Paid partnership'." :
    yours ? "Your video will be labeled as 'Promotional content'." : "");
  const policy = "https://www.tiktok.com/legal/page/global/bc-policy/en";
  const music = "https://www.tiktok.com/legal/page/global/music-usage-confirmation/en";
  $("post-declaration").replaceChildren("By posting, I agree to TikTok's ",
    ...(branded ? [el("a", { href: policy, rel: "noopener", target: "_blank" }, "Branded Content Policy"), " and "] : []),
    el("a", { href: music, rel: "noopener", target: "_blank" }, "Music Usage Confirmation"), ".");
  const chosen = document.querySelector("input[name=post-privacy]:checked");
  $("act-post").disabled = !chosen || !$("post-music").checked || (disclose && !yours && !branded);
}

async function submitPost(ev) {
  ev.preventDefault();
  const chosen = document.querySelector("input[name=post-privacy]:checked");
  const body = {
    direct_post: {
      privacy_level: chosen ? chosen.value : undefined,
      title: $("post-title").value,
      allow_comment: $("post-comment").checked,
      allow_duet: $("post-duet").checked,
      allow_stitch: $("post-stitch").checked,
      disclose_commercial: $("post-disclose").checked,
      your_brand: $("post-your-brand").checked,
      branded_content: $("post-branded").checked,
      is_aigc: $("post-aigc").checked,
      music_confirmed: $("post-music").checked,
    },
  };
  const note = $("review-note").value.trim();
  if (note) body.note = note;
  const res = await api("POST", jobBase() + "/approve", body);
  if (!res.ok) {
    showFieldErrors(res, "", $("err-post"));
    return;
  }
  text($("act-message"), "Approved: the video is being posted to TikTok.");
  show($("post-box"), false);
  loadJob();
}

function can(scope) {
  const scopes = (document.body.dataset.scopes || "").split(",");
  return scopes.includes("all") || scopes.includes("admin") || scopes.includes(scope);
}

function wireActions() {
  const say = (res, done) => text($("act-message"), res.ok ? done : message(res));
  const on = (id, fn) => $(id) && $(id).addEventListener("click", fn);
  on("act-approve", async () => {
    const note = $("review-note").value.trim();
    const res = await api("POST", jobBase() + "/approve", note ? { note } : {});
    say(res, "Approved.");
    if (res.ok) loadJob();
  });
  on("act-reject", async () => {
    const res = await api("POST", jobBase() + "/reject", { note: $("review-note").value });
    if (!res.ok) showFieldErrors(res, "", $("err-note"));
    say(res, "Sent back.");
    if (res.ok) loadJob();
  });
  const post = $("post-form");
  if (post) {
    post.addEventListener("change", composerChanged);
    post.addEventListener("submit", submitPost);
  }
  if (link) return;
  on("act-retry", async () => { const r = await api("POST", "/v1/jobs/" + jobId + "/retry"); say(r, "Queued again."); loadJob(); });
  on("act-cancel", async () => { const r = await api("POST", "/v1/jobs/" + jobId + "/cancel"); say(r, "Cancelled."); loadJob(); });
  on("act-purge", async () => {
    if (!confirm("Erase this job, its video and everything recorded about it? This cannot be undone.")) return;
    const r = await api("DELETE", "/v1/jobs/" + jobId);
    say(r, "Purged.");
    if (r.ok) location.href = "/jobs";
  });
  on("act-link", async () => {
    const r = await api("POST", "/v1/jobs/" + jobId + "/review-link", {});
    say(r, "A reviewer link was made.");
    if (r.ok) {
      $("link-out").replaceChildren("Send this link (valid until " + when(r.body.expires_at) + "): ", el("a", { href: r.body.url }, r.body.url));
      show($("link-out"), true);
    }
  });
  const revise = $("revise-form");
  if (revise) revise.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const changes = {};
    if ($("revise-script").value.trim() && $("revise-script").value !== (current.spec.script || "")) changes.script = $("revise-script").value;
    const voice = $("revise-voice").value.trim();
    if (voice && voice !== (current.spec.voice || "")) changes.voice = voice;
    const res = await api("POST", "/v1/jobs/" + jobId + "/revise", changes);
    if (!res.ok) showFieldErrors(res, "revise-", null);
    say(res, "Running again with the changes.");
    if (res.ok) { $("revise-script").value = ""; loadJob(); }
  });
}

// ---- Review queue ----------------------------------------------------------

async function review() {
  const load = async () => {
    for (const [state, list, empty] of [["in_review", "review-list", "review-empty"], ["changes_requested", "changes-list", "changes-empty"]]) {
      const res = await api("GET", "/v1/jobs?limit=100&state=" + state);
      if (!res.ok) { text($("review-status"), message(res)); return; }
      $(list).replaceChildren(...res.body.jobs.map((j) => el("li", { class: "card", "data-job": j.id },
        el("p", {}, el("a", { href: "/jobs/" + j.id }, (j.spec.script || j.spec.topic || j.id).slice(0, 120))),
        el("p", {}, stateBadge(j.state), " after " + (j.stage || "")))));
      show($(empty), res.body.jobs.length === 0);
    }
  };
  await load();
  follow("", { state: (ev) => { if (["in_review", "changes_requested", "queued"].includes(ev.state)) load(); } }, $("review-status"));
}

// ---- Batches ---------------------------------------------------------------

async function batches() {
  let source = null;
  const open = async (id) => {
    const res = await api("GET", "/v1/batches/" + encodeURIComponent(id));
    if (!res.ok) { text($("err-batch"), message(res)); show($("err-batch"), true); return; }
    show($("batch-report"), true);
    text($("batch-name"), id);
    const b = res.body;
    const finished = ["staged", "in_inbox", "posted", "failed", "cancelled"].reduce((n, s) => n + (b.jobs_by_state[s] || 0), 0);
    $("batch-progress").value = b.accepted ? Math.round((100 * finished) / b.accepted) : 100;
    text($("batch-counts"), b.lines + " lines: " + b.accepted + " accepted, " + b.rejected + " rejected; " +
      Object.entries(b.jobs_by_state).map(([s, n]) => n + " " + s).join(", ") + (b.done ? ". Done." : "."));
    if (!source && !b.done) source = follow("batch_id=" + encodeURIComponent(id), { state: () => open(id) }, $("batch-counts"));
    if (b.done && source) { source.close(); source = null; }
  };
  $("batch-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    show($("err-batch"), false);
    const file = $("batch-file").files[0];
    if (!file) return;
    const name = file.name.toLowerCase();
    const type = name.endsWith(".csv") ? "text/csv" : name.endsWith(".json") ? "application/json" : "application/x-ndjson";
    const res = await api("POST", "/v1/batches", await file.text(), type);
    if (!res.ok) { text($("err-batch"), message(res)); show($("err-batch"), true); return; }
    const b = res.body;
    $("batch-rejected").replaceChildren(...b.rejected.map((r) => el("li", {}, "Line " + r.line + ": " + r.message +
      (r.details || []).map((d) => " " + d.field + ": " + d.message).join(";"))));
    $("batch-accepted").replaceChildren(...b.accepted.map((a) => el("li", {}, "Line " + a.line + ": ",
      el("a", { href: "/jobs/" + a.job_id }, a.job_id), a.duplicate ? " (already submitted)" : "")));
    history.replaceState(null, "", "/batches?id=" + encodeURIComponent(b.batch_id));
    await open(b.batch_id);
  });
  $("batch-open").addEventListener("submit", (ev) => { ev.preventDefault(); if ($("batch-id").value.trim()) open($("batch-id").value.trim()); });
  const id = new URLSearchParams(location.search).get("id");
  if (id) open(id);
}

// ---- Ideas from a page -----------------------------------------------------

async function ideas() {
  let found = [];
  $("ideas-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = $("ideas-submit");
    const req = { url: $("ideas-url").value.trim(), count: Number($("ideas-count").value) };
    // The key goes with this one request and is never put back in the page.
    if ($("ideas-llm_key").value) req.llm_key = $("ideas-llm_key").value;
    button.disabled = true;
    text(button, "Reading the page…");
    const res = await api("POST", "/v1/ideas", req);
    button.disabled = false;
    text(button, "Find ideas");
    if (!res.ok) { show($("ideas-result"), false); showFieldErrors(res, "ideas-", $("err-ideas")); return; }
    showFieldErrors({ body: {} }, "ideas-", null);
    found = res.body.ideas;
    text($("ideas-origin"), res.body.origin);
    text($("ideas-title"), res.body.title ? "“" + res.body.title + "”, ideas by " + res.body.writer : "Ideas by " + res.body.writer);
    $("ideas-list").replaceChildren(...found.map((idea, i) => el("li", { class: "card", "data-idea": i },
      el("input", { type: "checkbox", id: "idea-" + i, value: i, "aria-describedby": "idea-" + i + "-about" }),
      el("label", { for: "idea-" + i, class: "choice-label" }, " " + idea.topic),
      el("p", { id: "idea-" + i + "-about" }, "“" + idea.hook + "”"),
      el("p", { class: "help" }, "About " + idea.target_length_s + " s" +
        (idea.footage_queries.length ? "; footage: " + idea.footage_queries.join(", ") : "")))));
    $("ideas-made").replaceChildren();
    text($("ideas-status"), "");
    show($("ideas-result"), true);
    $("ideas-h").focus();
  });
  $("ideas-pick").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const chosen = [...document.querySelectorAll("#ideas-list input[type=checkbox]:checked")].map((c) => found[Number(c.value)]);
    show($("err-ideas-pick"), false);
    if (!chosen.length) { text($("err-ideas-pick"), "Choose at least one idea."); show($("err-ideas-pick"), true); return; }
    const button = $("ideas-make");
    button.disabled = true;
    const res = await api("POST", "/v1/batches", JSON.stringify(chosen.map((idea) => idea.job)), "application/json");
    button.disabled = false;
    if (!res.ok) { text($("err-ideas-pick"), message(res)); show($("err-ideas-pick"), true); return; }
    const b = res.body;
    text($("ideas-status"), b.accepted.length + " video" + (b.accepted.length === 1 ? "" : "s") + " on the way" +
      (b.rejected.length ? "; " + b.rejected.length + " refused" : "") + ".");
    $("ideas-made").replaceChildren(
      ...b.accepted.map((a) => el("li", {}, el("a", { href: "/jobs/" + a.job_id }, (chosen[a.line - 1] || {}).topic || a.job_id))),
      ...b.rejected.map((r) => el("li", { class: "error" }, ((chosen[r.line - 1] || {}).topic || "The batch") + ": " + r.message)),
      el("li", {}, el("a", { href: "/batches?id=" + encodeURIComponent(b.batch_id) }, "Follow the batch")));
  });
}

// ---- Accounts --------------------------------------------------------------

async function accounts() {
  // The connect route answers with a redirect to the platform's consent page; the browser follows it.
  const connectTo = (platform) => () => { location.href = "/v1/accounts/" + platform + "/connect"; };
  for (const p of ["tiktok", "youtube", "instagram"]) $("connect-" + p).addEventListener("click", connectTo(p));
  const names = { tiktok: "TikTok", youtube: "YouTube", instagram: "Instagram" };
  const res = await api("GET", "/v1/accounts");
  if (!res.ok) { text($("err-accounts"), message(res)); show($("err-accounts"), true); return; }
  const list = res.body.accounts || [];
  show($("accounts-empty"), list.length === 0);
  $("account-list").replaceChildren(...list.map((a) => el("li", { class: "card", "data-account": a.id },
    el("h2", {}, a.display_name),
    el("p", {}, names[a.platform || "tiktok"] + " · ", stateBadge(a.status), " connected " + when(a.connected_at)),
    a.pending_drafts != null ? el("p", { class: "drafts" }, "Pending drafts (started in the last 24 h): " + a.pending_drafts + " of " + a.pending_draft_cap) : null,
    a.action ? el("p", { class: "notice" }, a.action) : null,
    (a.platform || "tiktok") === "tiktok" ? directPostToggle(a) : null,
    a.status === "needs_reconnect" ? el("button", { type: "button", onclick: connectTo(a.platform || "tiktok") }, "Reconnect") : null)));
}

// Direct Post is opt-in per account; each post still needs a person's approval in the composer.
function directPostToggle(a) {
  const id = "direct-" + a.id;
  const box = el("input", { type: "checkbox", id, "aria-describedby": id + "-help" });
  box.checked = !!a.direct_post;
  const status = el("span", { role: "status" });
  box.addEventListener("change", async () => {
    const res = await api("PATCH", "/v1/accounts/" + encodeURIComponent(a.id), { direct_post: box.checked });
    if (!res.ok) box.checked = !box.checked;
    text(status, res.ok ? (box.checked ? " Direct Post allowed." : " Direct Post off.") : " " + message(res));
  });
  return el("p", {}, el("label", { for: id }, box, " Allow Direct Post"), status,
    el("br"), el("small", { id: id + "-help", class: "help" },
      "Jobs may then ask to be posted on the profile; each one still waits for a person to choose its settings and approve it."));
}

// ---- Keys ------------------------------------------------------------------

async function keys() {
  const load = async () => {
    const res = await api("GET", "/v1/keys");
    if (!res.ok) return;
    $("key-table").tBodies[0].replaceChildren(...res.body.keys.map((k) => el("tr", { "data-key": k.id },
      el("td", {}, k.name, el("br"), el("small", {}, k.id)),
      el("td", {}, k.scopes.join(", ")),
      el("td", {}, k.requests + " requests" + (k.last_used_at ? ", last " + when(k.last_used_at) : "")),
      el("td", {}, k.revoked_at ? "revoked " + when(k.revoked_at) : "active"),
      el("td", {}, k.revoked_at ? "" : el("button", { type: "button", class: "danger", "aria-label": "Revoke " + k.name, onclick: async () => {
        if (!confirm("Revoke the key " + k.name + "? Everything using it stops working.")) return;
        await api("DELETE", "/v1/keys/" + k.id);
        load();
      } }, "Revoke")))));
  };
  $("key-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const scopes = [...document.querySelectorAll("#key-form input[type=checkbox]:checked")].map((c) => c.value);
    const res = await api("POST", "/v1/keys", { name: $("key-name").value, scopes });
    if (!res.ok) { showFieldErrors(res, "key-", $("err-key-name")); return; }
    text($("key-secret"), res.body.key);
    show($("key-made"), true);
    $("key-form").reset();
    load();
  });
  load();
}

// ---- System ----------------------------------------------------------------

async function system() {
  const res = await api("GET", "/v1/system");
  if (!res.ok) { text($("system-status"), message(res)); return; }
  $("system-table").tBodies[0].replaceChildren(...res.body.parts.map((p) => el("tr", { "data-part": p.name },
    el("th", { scope: "row" }, p.name), el("td", {}, p.configured),
    el("td", {}, p.healthy == null ? "not checked" : p.healthy ? "healthy" : "failing: " + (p.detail || "")))));
  text($("system-status"), "Checked " + when(res.body.checked_at) + ".");
}

const pages = { new: newVideo, ideas, jobs, job, reviewer: job, review, batches, accounts, keys, system };
if (pages[page]) pages[page]();
