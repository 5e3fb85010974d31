//! The Yew side: the [`use_persistence`] hook (status and metrics that re-render a component)
//! and the drop-in [`PersistenceDashboard`] (behind the default `dashboard` feature).

#[cfg(feature = "dashboard")]
mod dashboard;
mod hook;
#[cfg(feature = "dashboard")]
mod sync_panel;

#[cfg(feature = "dashboard")]
pub use dashboard::{DashboardProps, PersistenceDashboard, DASHBOARD_CSS};
pub use hook::{use_persistence, use_persistence_ready, UsePersistence};
