//! Who a page is rendered for: whether the write actions are theirs to
//! use, and the CSRF value their forms carry.

use maud::{html, Markup};

/// Whether the person looking at a page may use its write actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No `serve_token` configured: nobody can write.
    ReadOnly,
    /// A token is configured; this request does not carry it.
    LoggedOut,
    /// Logged in (cookie) or sent the bearer token.
    Operator,
}

/// The state a page is rendered for.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub access: Access,
    /// The value write forms must carry (only for a cookie session).
    pub csrf: Option<String>,
    /// `bearer` or `cookie` for an operator.
    pub via: Option<&'static str>,
}

impl Viewer {
    pub fn anonymous() -> Self {
        Viewer {
            access: Access::LoggedOut,
            csrf: None,
            via: None,
        }
    }

    pub fn is_operator(&self) -> bool {
        self.access == Access::Operator
    }

    /// The hidden `csrf` field every write form carries.
    pub fn csrf_field(&self) -> Markup {
        html! {
            @if let Some(c) = &self.csrf {
                input type="hidden" name="csrf" value=(c);
            }
        }
    }

    /// The login state in the page header.
    pub fn header(&self) -> Markup {
        html! {
            @match (self.access, self.via) {
                (Access::ReadOnly, _) => span title="set serve_token to enable write actions" { "read-only" },
                (Access::LoggedOut, _) => a href="/login" { "Log in" },
                (Access::Operator, Some("cookie")) => {
                    span { "operator" }
                    form.inline method="post" action="/logout" {
                        (self.csrf_field())
                        button type="submit" { "Log out" }
                    }
                },
                (Access::Operator, _) => span { "operator (bearer)" },
            }
        }
    }
}
