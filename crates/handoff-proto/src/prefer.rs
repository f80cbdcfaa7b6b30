//! The `Prefer` request header and the `Preference-Applied` response header
//! ([RFC 7240]).
//!
//! A resumable request (spec part B.1) is opted into with `Prefer: resume`; `resume` alone
//! and `resume=save-incomplete` ask the server to keep a partial upload so the client can
//! finish it, `resume=ignore-incomplete` asks it to throw partial uploads away. A client
//! fetching a response message that does not exist yet may send `Prefer: wait=N`
//! ([RFC 7240 §4.3], spec part C) to be held up to `N` seconds. The server says which
//! preferences it honoured in `Preference-Applied` ([RFC 7240 §3]).
//!
//! [`Preferences`] is the parsed `Prefer` header, [`PreferenceApplied`] the parsed
//! `Preference-Applied` header; both hold [`Preference`]s in wire order.
//!
//! # Grammar
//!
//! From [RFC 7240 §2] and §3, with `token`, `quoted-string`, `OWS` and `BWS` from
//! [RFC 9110 §5.6]:
//!
//! ```text
//! Prefer             = 1#preference
//! preference         = token [ BWS "=" BWS word ] *( OWS ";" [ OWS parameter ] )
//! parameter          = token [ BWS "=" BWS word ]
//! word               = token / quoted-string
//! Preference-Applied = 1#applied-pref
//! applied-pref       = token [ BWS "=" BWS word ]
//! ```
//!
//! Following those sections:
//!
//! - Preference and parameter names are case-insensitive: they are stored lowercased.
//!   Values are case-sensitive and kept verbatim (a quoted-string is unquoted and its
//!   quoted-pairs are unescaped).
//! - An empty value is the same as no value (RFC 7240 §2: `foo=""` equals `foo`), so it is
//!   stored as `None`.
//! - When a preference appears more than once only the first counts (RFC 7240 §2);
//!   [`Preferences::get`] returns the first, [`Preferences::iter`] shows every one.
//! - Empty list elements (`a,,b`, a leading or trailing comma) are skipped
//!   ([RFC 9110 §5.6.1]); a value holding no element at all is an error.
//! - At most [`MAX_PREFERENCES`] preferences per header (over all its field lines) and
//!   [`MAX_PARAMETERS`] parameters per preference are parsed; past that the parser returns
//!   an error, so a peer cannot make the list grow without bound.
//! - `Preference-Applied` carries no parameters (RFC 7240 §3): a `;` in it is an error.
//!
//! Serialisation writes `name`, `name=value` or `name="quoted value"` (a value is quoted
//! unless it is a non-empty token, and `"` and `\` are escaped), parameters as
//! `; name=value`, and separates preferences with `, `.
//!
//! # Examples
//!
//! Server side, reading the request's preferences and answering which one was applied:
//!
//! ```
//! use handoff_proto::prefer::{PreferenceApplied, Preferences, Resume, PREFER, PREFERENCE_APPLIED};
//! use http::HeaderMap;
//! use std::time::Duration;
//!
//! let mut request = HeaderMap::new();
//! request.insert(PREFER, "resume=ignore-incomplete, wait=10".parse().unwrap());
//! let prefs = Preferences::from_headers(&request).unwrap();
//! assert_eq!(prefs.resume(), Some(Resume::IgnoreIncomplete));
//! assert_eq!(prefs.wait(), Some(Duration::from_secs(10)));
//!
//! let applied = PreferenceApplied::new().with_resume(Resume::IgnoreIncomplete);
//! let mut response = HeaderMap::new();
//! response.insert(PREFERENCE_APPLIED, applied.to_header_value());
//! assert_eq!(response[PREFERENCE_APPLIED], "resume=ignore-incomplete");
//! ```
//!
//! Client side, building the header:
//!
//! ```
//! use handoff_proto::prefer::{Preferences, Resume};
//! use std::time::Duration;
//!
//! let prefs = Preferences::new()
//!     .with_resume(Resume::SaveIncomplete)
//!     .with_wait(Duration::from_secs(5));
//! assert_eq!(prefs.to_string(), "resume, wait=5");
//! ```
//!
//! Malformed input yields an error that says what is wrong:
//!
//! ```
//! use handoff_proto::prefer::Preferences;
//!
//! let err = Preferences::parse("resume=\"save").unwrap_err();
//! assert_eq!(err.to_string(), "invalid Prefer header at byte 7: unterminated quoted-string");
//! ```
//!
//! [RFC 7240]: https://www.rfc-editor.org/rfc/rfc7240
//! [RFC 7240 §2]: https://www.rfc-editor.org/rfc/rfc7240#section-2
//! [RFC 7240 §3]: https://www.rfc-editor.org/rfc/rfc7240#section-3
//! [RFC 7240 §4.3]: https://www.rfc-editor.org/rfc/rfc7240#section-4.3
//! [RFC 9110 §5.6]: https://www.rfc-editor.org/rfc/rfc9110#section-5.6
//! [RFC 9110 §5.6.1]: https://www.rfc-editor.org/rfc/rfc9110#section-5.6.1

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The `Prefer` request header name ([RFC 7240 §2](https://www.rfc-editor.org/rfc/rfc7240#section-2)).
///
/// ```
/// assert_eq!(handoff_proto::prefer::PREFER.as_str(), "prefer");
/// ```
pub const PREFER: HeaderName = HeaderName::from_static("prefer");

/// The `Preference-Applied` response header name
/// ([RFC 7240 §3](https://www.rfc-editor.org/rfc/rfc7240#section-3)).
///
/// ```
/// assert_eq!(handoff_proto::prefer::PREFERENCE_APPLIED.as_str(), "preference-applied");
/// ```
pub const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");

/// The most preferences parsed from one header (all its field lines together); one more
/// is an error. See the [module docs](self).
///
/// ```
/// use handoff_proto::prefer::{Preferences, MAX_PREFERENCES};
///
/// let many = vec!["a"; MAX_PREFERENCES + 1].join(",");
/// assert!(Preferences::parse(&many).is_err());
/// ```
pub const MAX_PREFERENCES: usize = 64;

/// The most parameters parsed for one preference; one more is an error.
///
/// ```
/// use handoff_proto::prefer::{Preferences, MAX_PARAMETERS};
///
/// let many = format!("a{}", ";p".repeat(MAX_PARAMETERS + 1));
/// assert!(Preferences::parse(&many).is_err());
/// ```
pub const MAX_PARAMETERS: usize = 16;

/// The longest wait [`Preferences::wait`] reports: 2^31 seconds, the value
/// [RFC 9111 §1.2.2](https://www.rfc-editor.org/rfc/rfc9111#section-1.2.2) tells recipients
/// to use for a `delta-seconds` too large to represent. Servers apply their own, much
/// smaller, limit on top.
///
/// ```
/// use handoff_proto::prefer::{Preferences, MAX_WAIT};
///
/// let prefs = Preferences::parse("wait=99999999999999999999999999").unwrap();
/// assert_eq!(prefs.wait(), Some(MAX_WAIT));
/// ```
pub const MAX_WAIT: Duration = Duration::from_secs(1 << 31);

/// What a client asks the server to do with an incomplete upload, from `Prefer: resume`
/// (spec part B.1).
///
/// ```
/// use handoff_proto::prefer::Resume;
///
/// assert_eq!(Resume::default(), Resume::SaveIncomplete);
/// assert_eq!(Resume::IgnoreIncomplete.as_str(), "ignore-incomplete");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Resume {
    /// `resume` or `resume=save-incomplete`: keep a partial upload so that it can be
    /// completed later. The default.
    #[default]
    SaveIncomplete,
    /// `resume=ignore-incomplete`: discard a partial upload.
    IgnoreIncomplete,
}

impl Resume {
    /// The value of this choice as written after `resume=`.
    ///
    /// ```
    /// use handoff_proto::prefer::Resume;
    ///
    /// assert_eq!(Resume::SaveIncomplete.as_str(), "save-incomplete");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Resume::SaveIncomplete => "save-incomplete",
            Resume::IgnoreIncomplete => "ignore-incomplete",
        }
    }

    /// Reads the `resume` preference; `None` when the value is unknown.
    fn from_value(value: Option<&str>) -> Option<Self> {
        match value {
            None | Some("save-incomplete") => Some(Resume::SaveIncomplete),
            Some("ignore-incomplete") => Some(Resume::IgnoreIncomplete),
            Some(_) => None,
        }
    }

    /// The preference that asks for this choice. `SaveIncomplete`, the default, is written
    /// as a bare `resume` (the form spec part B.1 shows).
    fn to_preference(self) -> Preference {
        let value = match self {
            Resume::SaveIncomplete => None,
            Resume::IgnoreIncomplete => Some(self.as_str().to_owned()),
        };
        Preference {
            name: "resume".to_owned(),
            value,
            params: Vec::new(),
        }
    }
}

impl fmt::Display for Resume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One preference: a name, an optional value and optional parameters
/// ([RFC 7240 §2](https://www.rfc-editor.org/rfc/rfc7240#section-2)).
///
/// The name and parameter names are lowercased; values are kept verbatim, unquoted. An
/// empty value is stored as `None`. See the [module docs](self).
///
/// ```
/// use handoff_proto::prefer::Preference;
///
/// let pref = Preference::new("Foo", Some("a b"))
///     .unwrap()
///     .with_param("x", None)
///     .unwrap();
/// assert_eq!(pref.name(), "foo");
/// assert_eq!(pref.value(), Some("a b"));
/// assert_eq!(pref.to_string(), "foo=\"a b\"; x");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Preference {
    name: String,
    value: Option<String>,
    params: Vec<(String, Option<String>)>,
}

impl Preference {
    /// A preference named `name` (a token, lowercased) with an optional `value` (any
    /// text without ASCII control characters other than tab; `Some("")` is the same as
    /// `None`).
    ///
    /// ```
    /// use handoff_proto::prefer::Preference;
    ///
    /// assert_eq!(Preference::new("wait", Some("10")).unwrap().to_string(), "wait=10");
    /// assert_eq!(Preference::new("x", Some("")).unwrap().value(), None);
    /// let err = Preference::new("bad name", None).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid preference name \"bad name\": not a token");
    /// ```
    pub fn new(name: &str, value: Option<&str>) -> Result<Self, PreferError> {
        Ok(Preference {
            name: checked_name(name)?,
            value: checked_value(value)?,
            params: Vec::new(),
        })
    }

    /// Adds a parameter (`; name=value`), with the same rules as [`Preference::new`].
    ///
    /// ```
    /// use handoff_proto::prefer::Preference;
    ///
    /// let pref = Preference::new("return", Some("minimal")).unwrap().with_param("Q", Some("1")).unwrap();
    /// assert_eq!(pref.params(), &[("q".to_owned(), Some("1".to_owned()))]);
    /// ```
    pub fn with_param(mut self, name: &str, value: Option<&str>) -> Result<Self, PreferError> {
        self.params
            .push((checked_name(name)?, checked_value(value)?));
        Ok(self)
    }

    /// The preference name, lowercased.
    ///
    /// ```
    /// use handoff_proto::prefer::Preferences;
    ///
    /// let prefs = Preferences::parse("RESUME").unwrap();
    /// assert_eq!(prefs.iter().next().unwrap().name(), "resume");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value, unquoted; `None` when absent or empty.
    ///
    /// ```
    /// use handoff_proto::prefer::Preferences;
    ///
    /// let prefs = Preferences::parse(r#"foo="a \"b\"""#).unwrap();
    /// assert_eq!(prefs.get("foo").unwrap().value(), Some(r#"a "b""#));
    /// ```
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// The parameters in wire order: lowercased names, unquoted values (`None` when
    /// absent or empty).
    ///
    /// ```
    /// use handoff_proto::prefer::Preferences;
    ///
    /// let prefs = Preferences::parse("foo; a=1; b").unwrap();
    /// let params = prefs.get("foo").unwrap().params();
    /// assert_eq!(params[0], ("a".to_owned(), Some("1".to_owned())));
    /// assert_eq!(params[1], ("b".to_owned(), None));
    /// ```
    pub fn params(&self) -> &[(String, Option<String>)] {
        &self.params
    }

    /// The value of the first parameter called `name` (case-insensitive): `None` when
    /// there is no such parameter, `Some(None)` when it has no value.
    ///
    /// ```
    /// use handoff_proto::prefer::Preferences;
    ///
    /// let prefs = Preferences::parse("foo; A=1; b").unwrap();
    /// let foo = prefs.get("foo").unwrap();
    /// assert_eq!(foo.param("a"), Some(Some("1")));
    /// assert_eq!(foo.param("b"), Some(None));
    /// assert_eq!(foo.param("c"), None);
    /// ```
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }
}

impl fmt::Display for Preference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_item(f, &self.name, self.value.as_deref())?;
        for (name, value) in &self.params {
            f.write_str("; ")?;
            write_item(f, name, value.as_deref())?;
        }
        Ok(())
    }
}

/// The `Prefer` request header: preferences in wire order
/// ([RFC 7240 §2](https://www.rfc-editor.org/rfc/rfc7240#section-2)).
///
/// See the [module docs](self) for the grammar and the parsing rules.
///
/// ```
/// use handoff_proto::prefer::{Preferences, Resume};
///
/// let prefs: Preferences = "respond-async, resume".parse().unwrap();
/// assert_eq!(prefs.len(), 2);
/// assert_eq!(prefs.resume(), Some(Resume::SaveIncomplete));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Preferences {
    items: Vec<Preference>,
}

impl Preferences {
    /// An empty list.
    ///
    /// An empty list serialises to an empty string, which is not a valid `Prefer` value:
    /// send the header only when [`Preferences::is_empty`] is false.
    ///
    /// ```
    /// use handoff_proto::prefer::Preferences;
    ///
    /// assert!(Preferences::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses one `Prefer` field value.
    ///
    /// ```
    /// use handoff_proto::prefer::Preferences;
    ///
    /// let prefs = Preferences::parse("wait=1, , Resume ;x").unwrap();
    /// assert_eq!(prefs.to_string(), "wait=1, resume; x");
    /// assert!(Preferences::parse("  ").is_err());
    /// ```
    pub fn parse(value: &str) -> Result<Self, PreferError> {
        parse_lines([value.as_bytes()], Header::Prefer).map(|items| Preferences { items })
    }

    /// Parses every `Prefer` field line of `headers`, in order, as one list
    /// ([RFC 9110 §5.3](https://www.rfc-editor.org/rfc/rfc9110#section-5.3)). No `Prefer`
    /// header gives an empty list; a header present but holding no preference is an
    /// error. Values need not be ASCII inside quoted-strings (obs-text) but must be UTF-8.
    ///
    /// ```
    /// use handoff_proto::prefer::{Preferences, PREFER};
    /// use http::HeaderMap;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.append(PREFER, "resume".parse().unwrap());
    /// headers.append(PREFER, "wait=3, resume=ignore-incomplete".parse().unwrap());
    /// let prefs = Preferences::from_headers(&headers).unwrap();
    /// assert_eq!(prefs.to_string(), "resume, wait=3, resume=ignore-incomplete");
    /// assert!(Preferences::from_headers(&HeaderMap::new()).unwrap().is_empty());
    /// ```
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, PreferError> {
        from_headers(headers, Header::Prefer).map(|items| Preferences { items })
    }

    /// The first preference called `name` (case-insensitive); later ones with the same
    /// name do not count ([RFC 7240 §2](https://www.rfc-editor.org/rfc/rfc7240#section-2)).
    ///
    /// ```
    /// use handoff_proto::prefer::Preferences;
    ///
    /// let prefs = Preferences::parse("wait=1, WAIT=2").unwrap();
    /// assert_eq!(prefs.get("Wait").unwrap().value(), Some("1"));
    /// assert!(prefs.get("resume").is_none());
    /// ```
    pub fn get(&self, name: &str) -> Option<&Preference> {
        first(&self.items, name)
    }

    /// Every preference in wire order, repeated names included.
    ///
    /// ```
    /// use handoff_proto::prefer::Preferences;
    ///
    /// let prefs = Preferences::parse("a, b, a").unwrap();
    /// let names: Vec<_> = prefs.iter().map(|p| p.name()).collect();
    /// assert_eq!(names, ["a", "b", "a"]);
    /// ```
    pub fn iter(&self) -> std::slice::Iter<'_, Preference> {
        self.items.iter()
    }

    /// The number of preferences, repeated names included.
    ///
    /// ```
    /// use handoff_proto::prefer::Preferences;
    ///
    /// assert_eq!(Preferences::parse("a,,b").unwrap().len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the list is empty.
    ///
    /// ```
    /// use handoff_proto::prefer::Preferences;
    ///
    /// assert!(!Preferences::parse("a").unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Appends a preference. If one with the same name is already present, the new one
    /// does not count for [`Preferences::get`] (the first wins).
    ///
    /// ```
    /// use handoff_proto::prefer::{Preference, Preferences};
    ///
    /// let mut prefs = Preferences::new();
    /// prefs.push(Preference::new("respond-async", None).unwrap());
    /// assert_eq!(prefs.to_string(), "respond-async");
    /// ```
    pub fn push(&mut self, preference: Preference) {
        self.items.push(preference);
    }

    /// The `resume` preference (spec part B.1): `resume` alone or
    /// `resume=save-incomplete` is [`Resume::SaveIncomplete`], `resume=ignore-incomplete`
    /// is [`Resume::IgnoreIncomplete`]. `None` when there is no `resume` preference **or
    /// its value is unknown**: RFC 7240 §2 lets a server ignore a preference it does not
    /// understand, so an unknown value is treated as not asking for resumption at all.
    ///
    /// ```
    /// use handoff_proto::prefer::{Preferences, Resume};
    ///
    /// assert_eq!(Preferences::parse("resume").unwrap().resume(), Some(Resume::SaveIncomplete));
    /// assert_eq!(Preferences::parse("resume=\"\"").unwrap().resume(), Some(Resume::SaveIncomplete));
    /// assert_eq!(Preferences::parse("resume=later").unwrap().resume(), None);
    /// assert_eq!(Preferences::parse("wait=1").unwrap().resume(), None);
    /// ```
    pub fn resume(&self) -> Option<Resume> {
        resume_of(&self.items)
    }

    /// The `wait` preference ([RFC 7240 §4.3](https://www.rfc-editor.org/rfc/rfc7240#section-4.3)):
    /// `wait=N` is `N` seconds, capped at [`MAX_WAIT`]. `None` when absent or when the
    /// value is not a `delta-seconds` (one or more ASCII digits).
    ///
    /// ```
    /// use handoff_proto::prefer::Preferences;
    /// use std::time::Duration;
    ///
    /// assert_eq!(Preferences::parse("wait=30").unwrap().wait(), Some(Duration::from_secs(30)));
    /// assert_eq!(Preferences::parse("wait=soon").unwrap().wait(), None);
    /// assert_eq!(Preferences::parse("wait=-1").unwrap().wait(), None);
    /// ```
    pub fn wait(&self) -> Option<Duration> {
        first(&self.items, "wait")
            .and_then(|p| p.value())
            .and_then(parse_delta_seconds)
    }

    /// Sets the `resume` preference, replacing any present. [`Resume::SaveIncomplete`] is
    /// written as a bare `resume`.
    ///
    /// ```
    /// use handoff_proto::prefer::{Preferences, Resume};
    ///
    /// let prefs = Preferences::new().with_resume(Resume::SaveIncomplete);
    /// assert_eq!(prefs.to_string(), "resume");
    /// let prefs = prefs.with_resume(Resume::IgnoreIncomplete);
    /// assert_eq!(prefs.to_string(), "resume=ignore-incomplete");
    /// ```
    pub fn with_resume(mut self, resume: Resume) -> Self {
        replace(&mut self.items, resume.to_preference());
        self
    }

    /// Sets the `wait` preference, replacing any present. The duration is rounded up to
    /// whole seconds and capped at [`MAX_WAIT`].
    ///
    /// ```
    /// use handoff_proto::prefer::Preferences;
    /// use std::time::Duration;
    ///
    /// let prefs = Preferences::new().with_wait(Duration::from_millis(1500));
    /// assert_eq!(prefs.to_string(), "wait=2");
    /// assert_eq!(prefs.wait(), Some(Duration::from_secs(2)));
    /// ```
    pub fn with_wait(mut self, wait: Duration) -> Self {
        let secs = wait
            .as_secs()
            .saturating_add(u64::from(wait.subsec_nanos() > 0))
            .min(MAX_WAIT.as_secs());
        let pref = Preference {
            name: "wait".to_owned(),
            value: Some(secs.to_string()),
            params: Vec::new(),
        };
        replace(&mut self.items, pref);
        self
    }

    /// The serialised list as a header value (the same text as [`Display`](fmt::Display)).
    ///
    /// ```
    /// use handoff_proto::prefer::{Preferences, Resume};
    ///
    /// let value = Preferences::new().with_resume(Resume::IgnoreIncomplete).to_header_value();
    /// assert_eq!(value, "resume=ignore-incomplete");
    /// ```
    pub fn to_header_value(&self) -> HeaderValue {
        header_value(self)
    }
}

impl fmt::Display for Preferences {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, &self.items)
    }
}

impl FromStr for Preferences {
    type Err = PreferError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The `Preference-Applied` response header: the preferences a server honoured
/// ([RFC 7240 §3](https://www.rfc-editor.org/rfc/rfc7240#section-3)).
///
/// Applied preferences carry a name and an optional value but no parameters. See the
/// [module docs](self).
///
/// ```
/// use handoff_proto::prefer::{PreferenceApplied, Resume};
///
/// let applied = PreferenceApplied::parse("resume, respond-async").unwrap();
/// assert!(applied.applied("respond-async").is_some());
/// assert_eq!(applied.resume(), Some(Resume::SaveIncomplete));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PreferenceApplied {
    items: Vec<Preference>,
}

impl PreferenceApplied {
    /// An empty list (serialises to an empty string: send the header only when
    /// [`PreferenceApplied::is_empty`] is false).
    ///
    /// ```
    /// use handoff_proto::prefer::PreferenceApplied;
    ///
    /// assert!(PreferenceApplied::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses one `Preference-Applied` field value. Parameters are an error.
    ///
    /// ```
    /// use handoff_proto::prefer::PreferenceApplied;
    ///
    /// assert_eq!(PreferenceApplied::parse("Return=minimal").unwrap().to_string(), "return=minimal");
    /// let err = PreferenceApplied::parse("return=minimal; x").unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid Preference-Applied header at byte 14: parameters are not allowed in Preference-Applied (RFC 7240 §3)"
    /// );
    /// ```
    pub fn parse(value: &str) -> Result<Self, PreferError> {
        parse_lines([value.as_bytes()], Header::Applied).map(|items| PreferenceApplied { items })
    }

    /// Parses every `Preference-Applied` field line of `headers`, in order, as one list;
    /// no such header gives an empty list.
    ///
    /// ```
    /// use handoff_proto::prefer::{PreferenceApplied, PREFERENCE_APPLIED};
    /// use http::HeaderMap;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert(PREFERENCE_APPLIED, "resume".parse().unwrap());
    /// let applied = PreferenceApplied::from_headers(&headers).unwrap();
    /// assert!(applied.applied("resume").is_some());
    /// ```
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, PreferError> {
        from_headers(headers, Header::Applied).map(|items| PreferenceApplied { items })
    }

    /// The first applied preference called `name` (case-insensitive), or `None` when the
    /// server did not say it applied it.
    ///
    /// ```
    /// use handoff_proto::prefer::PreferenceApplied;
    ///
    /// let applied = PreferenceApplied::parse("return=minimal").unwrap();
    /// assert_eq!(applied.applied("RETURN").unwrap().value(), Some("minimal"));
    /// assert!(applied.applied("resume").is_none());
    /// ```
    pub fn applied(&self, name: &str) -> Option<&Preference> {
        first(&self.items, name)
    }

    /// Every applied preference in wire order.
    ///
    /// ```
    /// use handoff_proto::prefer::PreferenceApplied;
    ///
    /// let applied = PreferenceApplied::parse("a, b=1").unwrap();
    /// assert_eq!(applied.iter().count(), 2);
    /// ```
    pub fn iter(&self) -> std::slice::Iter<'_, Preference> {
        self.items.iter()
    }

    /// The number of applied preferences.
    ///
    /// ```
    /// use handoff_proto::prefer::PreferenceApplied;
    ///
    /// assert_eq!(PreferenceApplied::parse("a, b").unwrap().len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the list is empty.
    ///
    /// ```
    /// use handoff_proto::prefer::PreferenceApplied;
    ///
    /// assert!(!PreferenceApplied::parse("a").unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Appends an applied preference; its parameters are dropped, since
    /// `Preference-Applied` has none (RFC 7240 §3). A typical server echoes what it took
    /// from the request.
    ///
    /// ```
    /// use handoff_proto::prefer::{PreferenceApplied, Preferences};
    ///
    /// let prefs = Preferences::parse("return=minimal; foo").unwrap();
    /// let mut applied = PreferenceApplied::new();
    /// applied.push(prefs.get("return").unwrap().clone());
    /// assert_eq!(applied.to_string(), "return=minimal");
    /// ```
    pub fn push(&mut self, mut preference: Preference) {
        preference.params.clear();
        self.items.push(preference);
    }

    /// Records that the `resume` preference was applied, replacing any `resume` present;
    /// written as in [`Preferences::with_resume`].
    ///
    /// ```
    /// use handoff_proto::prefer::{PreferenceApplied, Resume};
    ///
    /// let applied = PreferenceApplied::new().with_resume(Resume::SaveIncomplete);
    /// assert_eq!(applied.to_string(), "resume");
    /// ```
    pub fn with_resume(mut self, resume: Resume) -> Self {
        replace(&mut self.items, resume.to_preference());
        self
    }

    /// The applied `resume` preference, read as in [`Preferences::resume`] (unknown values
    /// give `None`).
    ///
    /// ```
    /// use handoff_proto::prefer::{PreferenceApplied, Resume};
    ///
    /// let applied = PreferenceApplied::parse("resume=ignore-incomplete").unwrap();
    /// assert_eq!(applied.resume(), Some(Resume::IgnoreIncomplete));
    /// ```
    pub fn resume(&self) -> Option<Resume> {
        resume_of(&self.items)
    }

    /// The serialised list as a header value.
    ///
    /// ```
    /// use handoff_proto::prefer::PreferenceApplied;
    ///
    /// let applied = PreferenceApplied::parse("a=\"x y\"").unwrap();
    /// assert_eq!(applied.to_header_value(), "a=\"x y\"");
    /// ```
    pub fn to_header_value(&self) -> HeaderValue {
        header_value(self)
    }
}

impl fmt::Display for PreferenceApplied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, &self.items)
    }
}

impl FromStr for PreferenceApplied {
    type Err = PreferError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Why a `Prefer` or `Preference-Applied` value, or a [`Preference`] being built, was
/// rejected. Its [`Display`](fmt::Display) names the header, the byte offset within the
/// field value when there is one, and what is wrong.
///
/// ```
/// use handoff_proto::prefer::Preferences;
///
/// let err = Preferences::parse("wait=").unwrap_err();
/// assert_eq!(err.offset(), Some(5));
/// assert_eq!(
///     err.to_string(),
///     "invalid Prefer header at byte 5: expected a token or quoted-string after '=', found end of input"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferError {
    header: Option<&'static str>,
    offset: Option<usize>,
    reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reason {
    Empty,
    NoElements,
    TooManyPreferences,
    TooManyParameters,
    Expected(&'static str, Option<u8>),
    Unterminated,
    BadQuotedChar(u8),
    BadEscape(Option<u8>),
    NotUtf8,
    ParamsNotAllowed,
    InvalidName(String),
    InvalidValue(String),
}

impl PreferError {
    /// The byte offset within the field value (within its field line, for
    /// [`Preferences::from_headers`]) where the problem was found, when there is one.
    ///
    /// ```
    /// use handoff_proto::prefer::Preferences;
    ///
    /// assert_eq!(Preferences::parse("a, @").unwrap_err().offset(), Some(3));
    /// assert_eq!(Preferences::parse("").unwrap_err().offset(), None);
    /// ```
    pub fn offset(&self) -> Option<usize> {
        self.offset
    }

    fn at(header: Header, offset: usize, reason: Reason) -> Self {
        PreferError {
            header: Some(header.name()),
            offset: Some(offset),
            reason,
        }
    }
}

struct Found(Option<u8>);

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("end of input"),
            Some(b) if b.is_ascii_graphic() => write!(f, "'{}'", char::from(b)),
            Some(b' ') => f.write_str("a space"),
            Some(b) => write!(f, "byte 0x{b:02x}"),
        }
    }
}

impl fmt::Display for PreferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(header) = self.header {
            write!(f, "invalid {header} header")?;
            if let Some(offset) = self.offset {
                write!(f, " at byte {offset}")?;
            }
            f.write_str(": ")?;
        }
        match &self.reason {
            Reason::Empty => f.write_str("empty value"),
            Reason::NoElements => f.write_str("no preference in the list"),
            Reason::TooManyPreferences => {
                write!(f, "more than {MAX_PREFERENCES} preferences")
            }
            Reason::TooManyParameters => {
                write!(f, "more than {MAX_PARAMETERS} parameters on one preference")
            }
            Reason::Expected(what, found) => {
                write!(f, "expected {what}, found {}", Found(*found))
            }
            Reason::Unterminated => f.write_str("unterminated quoted-string"),
            Reason::BadQuotedChar(b) => {
                write!(f, "{} is not allowed in a quoted-string", Found(Some(*b)))
            }
            Reason::BadEscape(b) => {
                write!(f, "invalid quoted-pair: '\\' followed by {}", Found(*b))
            }
            Reason::NotUtf8 => f.write_str("quoted-string is not valid UTF-8"),
            Reason::ParamsNotAllowed => {
                f.write_str("parameters are not allowed in Preference-Applied (RFC 7240 §3)")
            }
            Reason::InvalidName(name) => {
                write!(f, "invalid preference name {name:?}: not a token")
            }
            Reason::InvalidValue(value) => write!(
                f,
                "invalid preference value {value:?}: control characters other than tab are not allowed"
            ),
        }
    }
}

impl std::error::Error for PreferError {}

// ---------------------------------------------------------------------------------------
// Shared list helpers.

/// Which header is being parsed: names it in errors and says whether parameters are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    Prefer,
    Applied,
}

impl Header {
    fn name(self) -> &'static str {
        match self {
            Header::Prefer => "Prefer",
            Header::Applied => "Preference-Applied",
        }
    }

    fn field(self) -> HeaderName {
        match self {
            Header::Prefer => PREFER,
            Header::Applied => PREFERENCE_APPLIED,
        }
    }
}

fn first<'a>(items: &'a [Preference], name: &str) -> Option<&'a Preference> {
    items.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

fn replace(items: &mut Vec<Preference>, pref: Preference) {
    items.retain(|p| p.name != pref.name);
    items.push(pref);
}

fn resume_of(items: &[Preference]) -> Option<Resume> {
    first(items, "resume").and_then(|p| Resume::from_value(p.value()))
}

/// `delta-seconds = 1*DIGIT` (RFC 9111 §1.2.2, used by RFC 7240 §4.3), saturating at
/// [`MAX_WAIT`] instead of overflowing.
fn parse_delta_seconds(s: &str) -> Option<Duration> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let max = MAX_WAIT.as_secs();
    let secs = s.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10)
            .saturating_add(u64::from(b - b'0'))
            .min(max)
    });
    Some(Duration::from_secs(secs))
}

fn write_list(f: &mut fmt::Formatter<'_>, items: &[Preference]) -> fmt::Result {
    for (i, pref) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        fmt::Display::fmt(pref, f)?;
    }
    Ok(())
}

/// Writes `name` or `name=word`, quoting the value unless it is a token (RFC 9110 §5.6.4).
fn write_item(f: &mut fmt::Formatter<'_>, name: &str, value: Option<&str>) -> fmt::Result {
    f.write_str(name)?;
    let Some(value) = value else { return Ok(()) };
    f.write_str("=")?;
    if !value.is_empty() && value.bytes().all(is_tchar) {
        return f.write_str(value);
    }
    f.write_str("\"")?;
    for c in value.chars() {
        if c == '"' || c == '\\' {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("\"")
}

fn header_value(list: &impl fmt::Display) -> HeaderValue {
    // Names are tokens and values hold no control character other than tab (checked by
    // the constructors and the parser), so the text is always a valid field value.
    HeaderValue::from_str(&list.to_string())
        .expect("serialised preferences are a valid header value")
}

fn checked_name(name: &str) -> Result<String, PreferError> {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(PreferError {
            header: None,
            offset: None,
            reason: Reason::InvalidName(name.to_owned()),
        });
    }
    Ok(name.to_ascii_lowercase())
}

fn checked_value(value: Option<&str>) -> Result<Option<String>, PreferError> {
    match value {
        None | Some("") => Ok(None),
        Some(v) if v.chars().all(|c| c == '\t' || !c.is_ascii_control()) => Ok(Some(v.to_owned())),
        Some(v) => Err(PreferError {
            header: None,
            offset: None,
            reason: Reason::InvalidValue(v.to_owned()),
        }),
    }
}

// ---------------------------------------------------------------------------------------
// Parser (RFC 7240 §2-3 over RFC 9110 §5.6).

/// `tchar` (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `qdtext` (RFC 9110 §5.6.4): HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text.
fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5B | 0x5D..=0x7E | 0x80..=0xFF)
}

/// What may follow `\` in a quoted-pair (RFC 9110 §5.6.4): HTAB / SP / VCHAR / obs-text.
fn is_quotable(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21..=0x7E | 0x80..=0xFF)
}

fn from_headers(headers: &HeaderMap, header: Header) -> Result<Vec<Preference>, PreferError> {
    let lines = headers.get_all(header.field());
    if lines.iter().next().is_none() {
        return Ok(Vec::new());
    }
    parse_lines(lines.iter().map(HeaderValue::as_bytes), header)
}

/// Parses field lines as one list; an all-blank value is [`Reason::Empty`], a value with
/// only empty elements [`Reason::NoElements`].
fn parse_lines<'a>(
    lines: impl IntoIterator<Item = &'a [u8]>,
    header: Header,
) -> Result<Vec<Preference>, PreferError> {
    let mut items = Vec::new();
    let mut blank = true;
    for line in lines {
        blank &= line.iter().all(|&b| b == b' ' || b == b'\t');
        Parser {
            input: line,
            pos: 0,
            header,
        }
        .list(&mut items)?;
    }
    if items.is_empty() {
        let reason = if blank {
            Reason::Empty
        } else {
            Reason::NoElements
        };
        return Err(PreferError {
            header: Some(header.name()),
            offset: None,
            reason,
        });
    }
    Ok(items)
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    header: Header,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn err(&self, reason: Reason) -> PreferError {
        PreferError::at(self.header, self.pos, reason)
    }

    fn expected(&self, what: &'static str) -> PreferError {
        self.err(Reason::Expected(what, self.peek()))
    }

    /// `#element` with empty elements allowed (RFC 9110 §5.6.1), appending to `out`.
    fn list(&mut self, out: &mut Vec<Preference>) -> Result<(), PreferError> {
        loop {
            self.skip_ows();
            match self.peek() {
                None => return Ok(()),
                Some(b',') => {
                    self.pos += 1;
                    continue;
                }
                Some(_) => {}
            }
            let start = self.pos;
            let pref = self.preference()?;
            if out.len() == MAX_PREFERENCES {
                return Err(PreferError::at(
                    self.header,
                    start,
                    Reason::TooManyPreferences,
                ));
            }
            out.push(pref);
            self.skip_ows();
            match self.peek() {
                None => return Ok(()),
                Some(b',') => self.pos += 1,
                Some(_) => return Err(self.expected("',' or ';' after a preference")),
            }
        }
    }

    /// `preference` (RFC 7240 §2) or `applied-pref` (§3).
    fn preference(&mut self) -> Result<Preference, PreferError> {
        let name = self
            .token()
            .ok_or_else(|| self.expected("a preference name"))?;
        let value = self.opt_value()?;
        let mut params = Vec::new();
        loop {
            let before = self.pos;
            self.skip_ows();
            if self.peek() != Some(b';') {
                self.pos = before;
                break;
            }
            if self.header == Header::Applied {
                return Err(self.err(Reason::ParamsNotAllowed));
            }
            self.pos += 1;
            self.skip_ows();
            // `[ OWS parameter ]`: the parameter after ';' is optional.
            let start = self.pos;
            if let Some(pname) = self.token() {
                if params.len() == MAX_PARAMETERS {
                    return Err(PreferError::at(
                        self.header,
                        start,
                        Reason::TooManyParameters,
                    ));
                }
                let pvalue = self.opt_value()?;
                params.push((pname, pvalue));
            }
        }
        Ok(Preference {
            name,
            value,
            params,
        })
    }

    /// A lowercased token, or `None` (nothing consumed) when none starts here.
    fn token(&mut self) -> Option<String> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        let token = &self.input[start..self.pos];
        (!token.is_empty()).then(|| {
            token
                .iter()
                .map(|&b| char::from(b.to_ascii_lowercase()))
                .collect()
        })
    }

    /// `[ BWS "=" BWS word ]`; an empty value is `None` (RFC 7240 §2).
    fn opt_value(&mut self) -> Result<Option<String>, PreferError> {
        let before = self.pos;
        self.skip_ows();
        if self.peek() != Some(b'=') {
            self.pos = before;
            return Ok(None);
        }
        self.pos += 1;
        self.skip_ows();
        let start = self.pos;
        let value = match self.peek() {
            Some(b'"') => self.quoted_string()?,
            _ => {
                while self.peek().is_some_and(is_tchar) {
                    self.pos += 1;
                }
                if self.pos == start {
                    return Err(self.expected("a token or quoted-string after '='"));
                }
                self.input[start..self.pos].to_vec()
            }
        };
        if value.is_empty() {
            return Ok(None);
        }
        String::from_utf8(value)
            .map(Some)
            .map_err(|_| PreferError::at(self.header, start, Reason::NotUtf8))
    }

    /// `quoted-string` (RFC 9110 §5.6.4), unescaped. The cursor is on the opening quote.
    fn quoted_string(&mut self) -> Result<Vec<u8>, PreferError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(PreferError::at(self.header, open, Reason::Unterminated)),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b) if is_quotable(b) => out.push(b),
                        other => return Err(self.err(Reason::BadEscape(other))),
                    }
                }
                Some(b) if is_qdtext(b) => out.push(b),
                Some(b) => return Err(self.err(Reason::BadQuotedChar(b))),
            }
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pref(name: &str, value: Option<&str>) -> Preference {
        Preference::new(name, value).unwrap()
    }

    #[test]
    fn parses_names_values_and_params() {
        let prefs =
            Preferences::parse(r#"Respond-Async, wait = 100 , handling=lenient;A="x;y" ; ;b"#)
                .unwrap();
        assert_eq!(prefs.len(), 3);
        assert_eq!(
            prefs.get("respond-async"),
            Some(&pref("respond-async", None))
        );
        assert_eq!(prefs.wait(), Some(Duration::from_secs(100)));
        let handling = prefs.get("handling").unwrap();
        assert_eq!(handling.value(), Some("lenient"));
        assert_eq!(
            handling.params(),
            &[
                ("a".to_owned(), Some("x;y".to_owned())),
                ("b".to_owned(), None)
            ]
        );
    }

    #[test]
    fn values_are_case_sensitive_and_unquoted() {
        let prefs = Preferences::parse(r#"a=AbC, b="q\"\\ \z""#).unwrap();
        assert_eq!(prefs.get("a").unwrap().value(), Some("AbC"));
        assert_eq!(prefs.get("b").unwrap().value(), Some(r#"q"\ z"#));
        assert_eq!(prefs.to_string(), r#"a=AbC, b="q\"\\ z""#);
    }

    #[test]
    fn empty_values_equal_no_value() {
        // RFC 7240 §2: `foo; bar`, `foo; bar=""` and `foo=""; bar` are equivalent.
        let a = Preferences::parse("foo; bar").unwrap();
        let b = Preferences::parse("foo; bar=\"\"").unwrap();
        let c = Preferences::parse("foo=\"\"; bar").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn empty_list_elements_are_skipped() {
        let prefs = Preferences::parse(" , a ,, ,b,").unwrap();
        let names: Vec<_> = prefs.iter().map(Preference::name).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn first_occurrence_wins() {
        let prefs = Preferences::parse("resume=ignore-incomplete, resume, wait=1, wait=9").unwrap();
        assert_eq!(prefs.resume(), Some(Resume::IgnoreIncomplete));
        assert_eq!(prefs.wait(), Some(Duration::from_secs(1)));
        assert_eq!(prefs.len(), 4);
    }

    #[test]
    fn empty_values_are_errors() {
        for input in ["", " ", "\t "] {
            let err = Preferences::parse(input).unwrap_err();
            assert_eq!(err.to_string(), "invalid Prefer header: empty value");
        }
        let err = Preferences::parse(" ,, ").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid Prefer header: no preference in the list"
        );
    }

    #[test]
    fn syntax_errors_say_what_is_wrong() {
        let cases = [
            ("a b", "invalid Prefer header at byte 2: expected ',' or ';' after a preference, found 'b'"),
            ("=1", "invalid Prefer header at byte 0: expected a preference name, found '='"),
            ("a=,b", "invalid Prefer header at byte 2: expected a token or quoted-string after '=', found ','"),
            ("a=\"x\\", "invalid Prefer header at byte 5: invalid quoted-pair: '\\' followed by end of input"),
            ("a=\"x\u{1}\"", "invalid Prefer header at byte 4: byte 0x01 is not allowed in a quoted-string"),
            ("a=\"x", "invalid Prefer header at byte 2: unterminated quoted-string"),
            ("a;=1", "invalid Prefer header at byte 2: expected ',' or ';' after a preference, found '='"),
            ("a=\"x\"y", "invalid Prefer header at byte 5: expected ',' or ';' after a preference, found 'y'"),
        ];
        for (input, message) in cases {
            let err = Preferences::parse(input).unwrap_err();
            assert_eq!(err.to_string(), message, "input {input:?}");
        }
    }

    #[test]
    fn limits_are_enforced() {
        let ok = vec!["a"; MAX_PREFERENCES].join(", ");
        assert_eq!(Preferences::parse(&ok).unwrap().len(), MAX_PREFERENCES);
        let over = format!("{ok}, b");
        let err = Preferences::parse(&over).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "invalid Prefer header at byte {}: more than 64 preferences",
                ok.len() + 2
            )
        );

        let ok = format!("a{}", ";p".repeat(MAX_PARAMETERS));
        assert_eq!(
            Preferences::parse(&ok)
                .unwrap()
                .get("a")
                .unwrap()
                .params()
                .len(),
            MAX_PARAMETERS
        );
        let err = Preferences::parse(&format!("{ok};p")).unwrap_err();
        assert!(err
            .to_string()
            .ends_with("more than 16 parameters on one preference"));
    }

    #[test]
    fn limit_spans_field_lines() {
        let mut headers = HeaderMap::new();
        let half = vec!["a"; MAX_PREFERENCES / 2 + 1].join(",");
        headers.append(PREFER, HeaderValue::from_str(&half).unwrap());
        headers.append(PREFER, HeaderValue::from_str(&half).unwrap());
        assert!(Preferences::from_headers(&headers).is_err());
    }

    #[test]
    fn from_headers_combines_lines_and_accepts_obs_text() {
        let mut headers = HeaderMap::new();
        headers.append(PREFER, HeaderValue::from_static(""));
        headers.append(
            PREFER,
            HeaderValue::from_bytes("a=\"caf\u{e9}\"".as_bytes()).unwrap(),
        );
        headers.append(PREFER, HeaderValue::from_static("resume"));
        let prefs = Preferences::from_headers(&headers).unwrap();
        assert_eq!(prefs.get("a").unwrap().value(), Some("caf\u{e9}"));
        assert_eq!(prefs.resume(), Some(Resume::SaveIncomplete));
        // The serialised list, non-ASCII included, reads back from a header map.
        let mut again = HeaderMap::new();
        again.insert(PREFER, prefs.to_header_value());
        assert_eq!(Preferences::from_headers(&again).unwrap(), prefs);

        let mut headers = HeaderMap::new();
        headers.append(PREFER, HeaderValue::from_bytes(b"a=\"\xff\"").unwrap());
        let err = Preferences::from_headers(&headers).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid Prefer header at byte 2: quoted-string is not valid UTF-8"
        );

        let mut headers = HeaderMap::new();
        headers.append(PREFER, HeaderValue::from_static("  "));
        assert!(Preferences::from_headers(&headers).is_err());
    }

    #[test]
    fn resume_values() {
        let cases = [
            ("resume", Some(Resume::SaveIncomplete)),
            ("RESUME=save-incomplete", Some(Resume::SaveIncomplete)),
            (
                "resume=\"ignore-incomplete\"",
                Some(Resume::IgnoreIncomplete),
            ),
            ("resume=Ignore-Incomplete", None),
            ("resume=yes", None),
            ("wait=5", None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                Preferences::parse(input).unwrap().resume(),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn wait_values() {
        let cases = [
            ("wait=0", Some(Duration::ZERO)),
            ("wait=007", Some(Duration::from_secs(7))),
            ("wait=\"12\"", Some(Duration::from_secs(12))),
            ("wait=2147483648", Some(MAX_WAIT)),
            ("wait=2147483649", Some(MAX_WAIT)),
            ("wait=18446744073709551616", Some(MAX_WAIT)),
            ("wait=+5", None),
            ("wait=1.5", None),
            ("wait", None),
            ("resume", None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                Preferences::parse(input).unwrap().wait(),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn builders_replace_existing() {
        let prefs = Preferences::parse("resume=bogus, wait=1, x")
            .unwrap()
            .with_resume(Resume::IgnoreIncomplete)
            .with_wait(Duration::from_secs(u64::MAX));
        assert_eq!(
            prefs.to_string(),
            "x, resume=ignore-incomplete, wait=2147483648"
        );
        assert_eq!(
            Preferences::new().with_wait(Duration::ZERO).to_string(),
            "wait=0"
        );
        assert_eq!(
            Preferences::new()
                .with_wait(Duration::from_nanos(1))
                .to_string(),
            "wait=1"
        );
    }

    #[test]
    fn constructors_validate() {
        assert!(Preference::new("", None).is_err());
        assert!(Preference::new("a,b", None).is_err());
        assert!(Preference::new("a", Some("x\ny")).is_err());
        let err = Preference::new("a", Some("\u{7f}")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid preference value \"\\u{7f}\": control characters other than tab are not allowed"
        );
        let p = Preference::new("a", Some("tab\there \"q\" \\ é")).unwrap();
        assert_eq!(p.to_string(), "a=\"tab\there \\\"q\\\" \\\\ é\"");
        let mut prefs = Preferences::new();
        prefs.push(p.clone());
        let back = Preferences::parse(&prefs.to_string()).unwrap();
        assert_eq!(back.get("a"), Some(&p));
    }

    #[test]
    fn preference_applied() {
        let applied = PreferenceApplied::parse("Resume, return = minimal,,").unwrap();
        assert_eq!(applied.resume(), Some(Resume::SaveIncomplete));
        assert_eq!(applied.applied("return").unwrap().value(), Some("minimal"));
        assert_eq!(applied.to_string(), "resume, return=minimal");
        assert!(PreferenceApplied::parse("").is_err());
        let err = PreferenceApplied::parse("a;").unwrap_err();
        assert_eq!(err.offset(), Some(1));

        let mut headers = HeaderMap::new();
        headers.append(PREFERENCE_APPLIED, HeaderValue::from_static("a"));
        headers.append(PREFERENCE_APPLIED, HeaderValue::from_static("b=\"1 2\""));
        let applied = PreferenceApplied::from_headers(&headers).unwrap();
        assert_eq!(applied.to_header_value(), "a, b=\"1 2\"");
        // A Prefer header is not read as Preference-Applied.
        let mut headers = HeaderMap::new();
        headers.append(PREFER, HeaderValue::from_static("a"));
        assert!(PreferenceApplied::from_headers(&headers)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn error_traits() {
        fn assert_error<E: std::error::Error + Clone + PartialEq + Send + Sync + 'static>() {}
        assert_error::<PreferError>();
        let err = Preferences::parse("").unwrap_err();
        assert_eq!(err.clone(), err);
    }

    // ------------------------------------------------------------------------------------
    // Property tests.

    fn token() -> impl Strategy<Value = String> {
        "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
    }

    /// Values: tokens, or text with spaces, tabs, quotes, backslashes, separators and
    /// non-ASCII characters.
    fn value() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            token().prop_map(Some),
            "[ \ta-z\"\\\\,;=()é✓]{0,12}".prop_map(Some),
        ]
    }

    fn preference() -> impl Strategy<Value = Preference> {
        (
            token(),
            value(),
            prop::collection::vec((token(), value()), 0..4),
        )
            .prop_map(|(name, value, params)| {
                params.iter().fold(
                    Preference::new(&name, value.as_deref()).unwrap(),
                    |p, (n, v)| p.with_param(n, v.as_deref()).unwrap(),
                )
            })
    }

    fn preferences() -> impl Strategy<Value = Preferences> {
        prop::collection::vec(preference(), 1..8).prop_map(|prefs| {
            let mut list = Preferences::new();
            for p in prefs {
                list.push(p);
            }
            list
        })
    }

    /// Serialises with the optional whitespace the grammar allows (OWS around `,` and
    /// `;`, BWS around `=`) and empty list elements, which must not change the parse.
    fn spaced(items: &[Preference]) -> String {
        let item = |name: &str, value: &Option<String>| {
            let bare = Preference {
                name: name.to_owned(),
                value: value.clone(),
                params: Vec::new(),
            };
            // The name is a token, so the first '=' is the separator.
            bare.to_string().replacen('=', " \t= ", 1)
        };
        let mut out = String::from(" ,");
        for p in items {
            out.push_str(&item(&p.name, &p.value));
            for (n, v) in &p.params {
                out.push_str(" ;\t");
                out.push_str(&item(n, v));
            }
            out.push_str(" ,\t, ");
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn prefer_round_trips(prefs in preferences()) {
            let text = prefs.to_string();
            prop_assert_eq!(&Preferences::parse(&text).unwrap(), &prefs);
            let value = prefs.to_header_value();
            let mut headers = HeaderMap::new();
            headers.insert(PREFER, value);
            prop_assert_eq!(&Preferences::from_headers(&headers).unwrap(), &prefs);
            prop_assert_eq!(Preferences::parse(&spaced(&prefs.items)).unwrap(), prefs);
        }

        #[test]
        fn applied_round_trips(prefs in preferences()) {
            let mut applied = PreferenceApplied::new();
            for p in prefs.iter() {
                applied.push(p.clone());
            }
            prop_assert!(applied.iter().all(|p| p.params().is_empty()));
            let text = applied.to_string();
            prop_assert_eq!(&PreferenceApplied::parse(&text).unwrap(), &applied);
            prop_assert_eq!(PreferenceApplied::parse(&spaced(&applied.items)).unwrap(), applied);
        }

        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,64}|[ ,;=\"\\\\a-z\t]{0,64}") {
            if let Ok(prefs) = Preferences::parse(&s) {
                // Whatever parses serialises to a value that parses to the same list.
                prop_assert!(prefs.len() <= MAX_PREFERENCES);
                prop_assert_eq!(Preferences::parse(&prefs.to_string()).unwrap(), prefs);
            }
            if let Ok(applied) = PreferenceApplied::parse(&s) {
                prop_assert_eq!(PreferenceApplied::parse(&applied.to_string()).unwrap(), applied);
            }
            let _ = Preference::new(&s, Some(&s));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                let mut headers = HeaderMap::new();
                headers.insert(PREFER, value.clone());
                headers.insert(PREFERENCE_APPLIED, value);
                if let Ok(prefs) = Preferences::from_headers(&headers) {
                    let _ = (prefs.resume(), prefs.wait(), prefs.to_header_value());
                }
                let _ = PreferenceApplied::from_headers(&headers);
            }
        }

        #[test]
        fn malformed_input_errors_say_so(prefs in preferences(), tail in prop_oneof![
            Just(("a=\"open", "unterminated quoted-string")),
            Just(("a=", "expected a token or quoted-string")),
            Just(("a b", "expected ',' or ';'")),
            Just(("a=\"\\\u{1}\"", "invalid quoted-pair")),
            Just(("{", "expected a preference name")),
        ]) {
            let input = format!("{prefs}, {}", tail.0);
            let err = Preferences::parse(&input).unwrap_err();
            let message = err.to_string();
            prop_assert!(message.starts_with("invalid Prefer header at byte "), "{}", message);
            prop_assert!(message.contains(tail.1), "{}", message);
            prop_assert!(err.offset().is_some_and(|o| o > prefs.to_string().len()));
        }

        #[test]
        fn wait_never_overflows(digits in "[0-9]{1,40}") {
            let prefs = Preferences::parse(&format!("wait={digits}")).unwrap();
            let expected = digits
                .parse::<u128>()
                .map_or(MAX_WAIT.as_secs(), |n| n.min(u128::from(MAX_WAIT.as_secs())) as u64);
            prop_assert_eq!(prefs.wait(), Some(Duration::from_secs(expected)));
        }

        #[test]
        fn with_wait_reads_back(ms in any::<u64>()) {
            let wait = Duration::from_millis(ms);
            let read = Preferences::new().with_wait(wait).wait().unwrap();
            prop_assert!(read <= MAX_WAIT);
            prop_assert!(read >= wait.min(MAX_WAIT));
            prop_assert!(read < wait.min(MAX_WAIT) + Duration::from_secs(1));
        }
    }
}
