//! Listener roles: which listener serves inference routes and which the management API,
//! found by the local address a request came in on.

use std::net::SocketAddr;

use asbru_config::model::Listener;

/// What one listener serves, found by the local address a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerRoles {
    /// The listening address.
    pub address: SocketAddr,
    /// Inference routes.
    pub inference: bool,
    /// The management API and the dashboard.
    pub admin: bool,
}

/// The roles of each listener, or `None` when every listener serves everything (no check is
/// needed then).
pub fn roles(listeners: &[Listener]) -> Option<Vec<ListenerRoles>> {
    if listeners.iter().all(|l| l.inference && l.admin) {
        return None;
    }
    Some(
        listeners
            .iter()
            .filter_map(|l| {
                Some(ListenerRoles {
                    address: l.address.parse().ok()?,
                    inference: l.inference,
                    admin: l.admin,
                })
            })
            .collect(),
    )
}

/// The roles of the listener bound to `local` (a listener on an unspecified address matches
/// any local address with its port). An unknown address serves nothing.
pub fn roles_at(table: &[ListenerRoles], local: Option<SocketAddr>) -> (bool, bool) {
    let Some(local) = local else {
        return (false, false);
    };
    let exact = table.iter().find(|r| r.address == local);
    let wildcard = || {
        table
            .iter()
            .find(|r| r.address.port() == local.port() && r.address.ip().is_unspecified())
    };
    exact
        .or_else(wildcard)
        .map_or((false, false), |r| (r.inference, r.admin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_found_by_exact_or_wildcard_address() {
        let table = vec![
            ListenerRoles {
                address: "127.0.0.1:8080".parse().expect("addr"),
                inference: true,
                admin: false,
            },
            ListenerRoles {
                address: "0.0.0.0:9090".parse().expect("addr"),
                inference: false,
                admin: true,
            },
        ];
        assert_eq!(roles_at(&table, "127.0.0.1:8080".parse().ok()), (true, false));
        assert_eq!(roles_at(&table, "10.1.2.3:9090".parse().ok()), (false, true));
        assert_eq!(roles_at(&table, "127.0.0.1:7070".parse().ok()), (false, false));
    }
}
