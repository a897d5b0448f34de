//! GeoIP: download GeoLite2 CSV editions from MaxMind and build and install the legacy
//! `GeoIP.dat` family that libGeoIP, mod_geoip and nginx read.

pub mod archive;
pub mod download;
pub mod install;
pub mod license;
pub mod lock;
pub mod state;
