//! A web page's readable text: its title, headings and paragraphs, without
//! scripts, styles, navigation, forms or markup.
//!
//! A small tolerant reader, not a full HTML parser: it walks tags and text
//! once, skips the content of elements no reader sees (`script`, `style`,
//! `noscript`, `template`, `svg`, `nav`, `footer`, `aside`, `form`, …),
//! breaks blocks at block-level tags, decodes the common character
//! references and collapses white space. Malformed markup degrades to less
//! text, never to markup in the text.

/// What a block of the page is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// `h1`-`h6`, with its level.
    Heading(u8),
    /// A paragraph, list item, cell or any other run of text.
    Text,
}

/// One block of readable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub kind: BlockKind,
    pub text: String,
}

/// A page reduced to what a reader sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageText {
    /// The `<title>`, if it has words.
    pub title: Option<String>,
    /// Headings and text blocks, in page order.
    pub blocks: Vec<Block>,
}

/// Elements whose content is never read.
const SKIPPED: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "math", "nav", "footer", "aside", "form", "iframe", "object",
    "canvas", "select", "button", "head", "dialog",
];

/// Elements whose text is taken raw, up to their end tag (no tags inside).
const RAW: &[&str] = &["script", "style", "title", "textarea", "xmp", "plaintext"];

/// Elements that start and end a block of text.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "br",
    "hr",
    "section",
    "article",
    "main",
    "header",
    "blockquote",
    "pre",
    "table",
    "tr",
    "td",
    "th",
    "figure",
    "figcaption",
    "address",
    "summary",
    "details",
    "body",
    "html",
    "caption",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
];

impl PageText {
    /// Reads `html`.
    pub fn from_html(html: &str) -> Self {
        Reader::default().read(html)
    }

    /// Whether the page has anything to read besides its title: at least a
    /// few words in its blocks.
    pub fn has_text(&self) -> bool {
        self.blocks.iter().map(|b| b.text.split_whitespace().count()).sum::<usize>() >= 5
    }

    /// The text the script writer is shown: the title, then each block on its
    /// own line (headings marked with `#`s), cut at a block boundary (or
    /// within the first block) to at most `max_chars` characters.
    pub fn bounded(&self, max_chars: usize) -> String {
        let mut out = String::new();
        let mut used = 0;
        let lines = self.title.iter().map(|t| format!("Title: {t}")).chain(self.blocks.iter().map(|b| match b.kind {
            BlockKind::Heading(level) => format!("{} {}", "#".repeat(usize::from(level)), b.text),
            BlockKind::Text => b.text.clone(),
        }));
        for line in lines {
            let chars = line.chars().count() + 1;
            if used + chars > max_chars {
                if used == 0 {
                    out.extend(line.chars().take(max_chars));
                }
                break;
            }
            out.push_str(&line);
            out.push('\n');
            used += chars;
        }
        out
    }

    /// The headings, in page order.
    pub fn headings(&self) -> impl Iterator<Item = &str> {
        self.blocks.iter().filter(|b| matches!(b.kind, BlockKind::Heading(_))).map(|b| b.text.as_str())
    }
}

#[derive(Default)]
struct Reader {
    page: PageText,
    /// Text of the block being read.
    text: String,
    /// The heading level of the block being read, if it is a heading.
    heading: Option<u8>,
    /// Open skipped elements (their content is not read).
    skipping: usize,
}

impl Reader {
    fn read(mut self, html: &str) -> PageText {
        let mut rest = html;
        while !rest.is_empty() {
            let Some(lt) = rest.find('<') else {
                self.push_text(rest);
                break;
            };
            self.push_text(&rest[..lt]);
            rest = &rest[lt..];
            if let Some(after) = rest.strip_prefix("<!--") {
                rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            } else if rest.starts_with("<!") || rest.starts_with("<?") {
                rest = rest.find('>').map_or("", |end| &rest[end + 1..]);
            } else if let Some((tag, after)) = Tag::read(rest) {
                rest = after;
                self.tag(&tag);
                if tag.open && !tag.self_closing && RAW.contains(&tag.name.as_str()) {
                    let (inside, after) = raw_text(rest, &tag.name);
                    if tag.name == "title" && self.page.title.is_none() {
                        let title = collapse(&decode(inside));
                        self.page.title = (!title.is_empty()).then_some(title);
                    } else if !matches!(tag.name.as_str(), "script" | "style") && self.skipping == 0 {
                        self.push_text(inside);
                    }
                    rest = after;
                    if SKIPPED.contains(&tag.name.as_str()) {
                        self.skipping = self.skipping.saturating_sub(1);
                    }
                }
            } else {
                // A `<` that starts no tag is text.
                self.push_text("<");
                rest = &rest[1..];
            }
        }
        self.end_block();
        self.page
    }

    fn tag(&mut self, tag: &Tag) {
        let name = tag.name.as_str();
        if name == "body" && tag.open {
            // The head ends where the body starts, `</head>` or not.
            self.skipping = 0;
        }
        if SKIPPED.contains(&name) {
            if tag.open && !tag.self_closing {
                self.end_block();
                self.skipping += 1;
            } else if !tag.open {
                self.skipping = self.skipping.saturating_sub(1);
            }
            return;
        }
        if BLOCKS.contains(&name) {
            self.end_block();
            if tag.open && self.skipping == 0 {
                self.heading = heading_level(name);
            }
        } else if name == "img" && self.skipping == 0 {
            // Words an image stands for are part of the text.
            if let Some(alt) = tag.alt.as_deref().filter(|a| !a.trim().is_empty()) {
                self.push_text(&format!(" {alt} "));
            }
        }
    }

    fn push_text(&mut self, raw: &str) {
        if self.skipping == 0 && !raw.is_empty() {
            self.text.push_str(&decode(raw));
        }
    }

    fn end_block(&mut self) {
        let text = collapse(&std::mem::take(&mut self.text));
        let kind = self.heading.take().map_or(BlockKind::Text, BlockKind::Heading);
        if text.chars().any(char::is_alphanumeric) {
            self.page.blocks.push(Block { kind, text });
        }
    }
}

fn heading_level(name: &str) -> Option<u8> {
    match name.as_bytes() {
        [b'h', d @ b'1'..=b'6'] => Some(d - b'0'),
        _ => None,
    }
}

/// One tag, as far as the reader cares.
struct Tag {
    name: String,
    open: bool,
    self_closing: bool,
    alt: Option<String>,
}

impl Tag {
    /// Reads the tag at the start of `s` (which starts with `<`); the tag and
    /// the rest after its `>`. `None` when `<` starts no tag.
    fn read(s: &str) -> Option<(Tag, &str)> {
        let body = &s[1..];
        let (open, body) = match body.strip_prefix('/') {
            Some(b) => (false, b),
            None => (true, body),
        };
        if !body.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return None;
        }
        let name_len = body.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == ':')).unwrap_or(body.len());
        let name = body[..name_len].to_ascii_lowercase();
        // The end of the tag: the first `>` outside quoted attribute values.
        let mut quote = None;
        let mut end = None;
        for (i, c) in body[name_len..].char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '>') => {
                    end = Some(name_len + i);
                    break;
                }
                _ => {}
            }
        }
        let Some(end) = end else { return Some((Tag { name, open, self_closing: false, alt: None }, "")) };
        let attrs = &body[name_len..end];
        let self_closing = attrs.trim_end().ends_with('/');
        let alt = if name == "img" { attribute(attrs, "alt").map(|a| decode(&a)) } else { None };
        Some((Tag { name, open, self_closing, alt }, &body[end + 1..]))
    }
}

/// The value of attribute `name` in a tag's attribute text.
fn attribute(attrs: &str, name: &str) -> Option<String> {
    let lower = attrs.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find(name) {
        let start = from + at;
        from = start + name.len();
        let before_ok = start == 0 || lower.as_bytes()[start - 1].is_ascii_whitespace();
        let after = lower[from..].trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let value = attrs[attrs.len() - after.len() + 1..].trim_start();
        return Some(match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or_default().to_string(),
            _ => value.split(|c: char| c.is_whitespace() || c == '>').next().unwrap_or_default().to_string(),
        });
    }
    None
}

/// The content of a raw-text element up to `</name`, and what follows its end tag.
fn raw_text<'a>(s: &'a str, name: &str) -> (&'a str, &'a str) {
    let close = format!("</{name}");
    let lower = s.to_ascii_lowercase();
    match lower.find(&close) {
        Some(at) => {
            let after = &s[at..];
            let end = after.find('>').map_or(after.len(), |e| e + 1);
            (&s[..at], &after[end..])
        }
        None => (s, ""),
    }
}

/// Runs of white space as one space, trimmed.
fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Decodes numeric character references and the named ones pages use most.
fn decode(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest[1..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '#')).map(|e| e + 1);
        let Some(end) = end.filter(|e| rest[*e..].starts_with(';') && *e > 1) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let name = &rest[1..end];
        let decoded = match name.strip_prefix('#') {
            Some(num) => {
                let code = match num.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => num.parse().ok(),
                };
                code.and_then(char::from_u32).filter(|c| !c.is_control() || c.is_whitespace())
            }
            None => named(name),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn named(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "laquo" => '«',
        "raquo" => '»',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "eacute" => 'é',
        "egrave" => 'è',
        "uuml" => 'ü',
        "ouml" => 'ö',
        "auml" => 'ä',
        "szlig" => 'ß',
        "middot" => '·',
        "bull" => '•',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en"><head>
  <meta charset="utf-8"><title>Tide Pools &amp; Their Keepers</title>
  <style>body { color: red } h1 > p { }</style>
  <script>var secret = "<h1>not a heading</h1>"; if (a < b) {}</script>
</head>
<body>
  <nav><a href="/">Home</a> <a href="/shop">Shop the store</a></nav>
  <script>track("every visitor of the page is counted here");</script>
  <header><h1 class="hero">Life in a tide pool</h1></header>
  <!-- <p>a commented-out paragraph</p> -->
  <main>
    <p>Twice a day the sea <b>leaves</b> small worlds behind.
       Crabs, anemones and&nbsp;snails wait for the water.</p>
    <h2 data-x='a > b'>Why anemones close</h2>
    <p>They fold up to keep water in when the tide goes out.<br>It looks like a flower shutting.</p>
    <img src="a.png" alt="A green anemone"><img src="spacer.gif">
    <ul><li>Go at low tide</li><li>Step on bare rock</li></ul>
    <form><label>Email</label><input name="e"><button>Subscribe now</button></form>
  </main>
  <footer>© 2026 The Shore Club. All rights reserved.</footer>
  <script src="x.js"></script>
</body></html>"#;

    fn texts(page: &PageText) -> Vec<String> {
        page.blocks.iter().map(|b| b.text.clone()).collect()
    }

    #[test]
    fn a_page_keeps_title_headings_and_paragraphs_and_drops_the_rest() {
        let page = PageText::from_html(PAGE);
        assert_eq!(page.title.as_deref(), Some("Tide Pools & Their Keepers"));
        assert_eq!(page.headings().collect::<Vec<_>>(), ["Life in a tide pool", "Why anemones close"]);
        assert_eq!(page.blocks[0].kind, BlockKind::Heading(1));
        assert_eq!(page.blocks[2].kind, BlockKind::Heading(2));
        assert_eq!(
            texts(&page),
            [
                "Life in a tide pool",
                "Twice a day the sea leaves small worlds behind. Crabs, anemones and snails wait for the water.",
                "Why anemones close",
                "They fold up to keep water in when the tide goes out.",
                "It looks like a flower shutting.",
                "A green anemone",
                "Go at low tide",
                "Step on bare rock",
            ]
        );
        let all = texts(&page).join(" ");
        for gone in [
            "secret",
            "visitor",
            "color",
            "Home",
            "Shop",
            "commented",
            "Subscribe",
            "Email",
            "rights reserved",
            "<",
            ">",
        ] {
            assert!(!all.contains(gone), "{gone:?} was kept: {all}");
        }
        assert!(page.has_text());
    }

    #[test]
    fn the_text_for_the_writer_is_bounded_at_a_block() {
        let page = PageText::from_html(PAGE);
        let all = page.bounded(10_000);
        assert!(all.starts_with("Title: Tide Pools & Their Keepers\n# Life in a tide pool\nTwice a day"), "{all}");
        assert!(all.contains("\n## Why anemones close\n"), "{all}");
        let short = page.bounded(80);
        assert_eq!(short, "Title: Tide Pools & Their Keepers\n# Life in a tide pool\n");
        assert!(short.chars().count() <= 80);
        let tiny = page.bounded(5);
        assert_eq!(tiny, "Title");
    }

    #[test]
    fn references_are_decoded_once_and_broken_ones_kept_as_written() {
        assert_eq!(decode("a &amp;lt; b &#233;t&#xE9; &copy; &bogus; & x &#0; &"), "a &lt; b été © &bogus; & x &#0; &");
        let page = PageText::from_html("<p>&lt;script&gt;alert(1)&lt;/script&gt; is text here, shown as text.</p>");
        assert_eq!(texts(&page), ["<script>alert(1)</script> is text here, shown as text."]);
    }

    #[test]
    fn malformed_markup_gives_less_text_never_markup() {
        // An unclosed script swallows the rest; an unclosed tag ends the text.
        assert_eq!(PageText::from_html("<p>before</p><script>x = 1; <p>after</p>").blocks.len(), 1);
        assert_eq!(texts(&PageText::from_html("<p>one two <b class=\"x")), ["one two"]);
        // A `<` that starts no tag is text; upper-case tags are tags.
        assert_eq!(texts(&PageText::from_html("<P>1 < 2 and 3 <= 4</P><SCRIPT>no</SCRIPT>")), ["1 < 2 and 3 <= 4"]);
        // Nested skipped elements are skipped whole.
        assert_eq!(
            texts(&PageText::from_html("<nav><ul><li>a</li><nav>b</nav><li>c</li></ul></nav><p>kept</p>")),
            ["kept"]
        );
        // A head left open ends at the body.
        assert_eq!(texts(&PageText::from_html("<head><title>t</title><body><p>kept</p>")), ["kept"]);
        // Self-closing svg skips nothing.
        assert_eq!(texts(&PageText::from_html("<svg/><p>kept</p>")), ["kept"]);
    }

    #[test]
    fn a_page_of_scripts_has_no_text() {
        let app = PageText::from_html(
            "<html><head><title>App</title></head><body><div id=root></div><script>render()</script></body></html>",
        );
        assert_eq!(app.title.as_deref(), Some("App"));
        assert!(!app.has_text());
        assert!(!PageText::from_html("").has_text());
    }

    #[test]
    fn attribute_values_are_read_quoted_or_bare() {
        assert_eq!(attribute(r#" src="a.png" alt="A > B""#, "alt").as_deref(), Some("A > B"));
        assert_eq!(attribute(" data-alt='x' alt=bare", "alt").as_deref(), Some("bare"));
        assert_eq!(attribute(" salt=\"no\"", "alt"), None);
    }
}
