//! Where a request came from: what every audit entry of the request records beside who
//! acted.

/// The request's id, the purpose stated for it (`X-Purpose`) and the client address.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub purpose: Option<String>,
    pub client: Option<String>,
    /// How the request came: `None` for the API, `Some("web")` for the pages.
    pub channel: Option<&'static str>,
}

impl RequestMeta {
    /// The same request, made through the web pages.
    pub fn web(mut self) -> Self {
        self.channel = Some("web");
        self
    }
}
