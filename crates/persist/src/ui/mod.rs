//! The Yew side: the [`use_persistence`] hook (status and metrics that re-render a component),
//! the drop-in [`PersistenceDashboard`] (behind the default `dashboard` feature) and the
//! [`ConflictCenter`] page (behind the default `conflict-center` feature).

#[cfg(feature = "conflict-center")]
mod conflict_center;
#[cfg(feature = "dashboard")]
mod dashboard;
mod hook;
#[cfg(feature = "dashboard")]
mod sync_panel;

#[cfg(feature = "conflict-center")]
pub use conflict_center::{ConflictCenter, ConflictCenterProps, CONFLICT_CENTER_CSS};
#[cfg(feature = "dashboard")]
pub use dashboard::{DashboardProps, PersistenceDashboard, DASHBOARD_CSS};
pub use hook::{use_persistence, use_persistence_ready, UsePersistence};
