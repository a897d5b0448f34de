//! GeoLite2 CSV → legacy libGeoIP `.dat` files (`GeoIP.dat`, `GeoIPv6.dat`, `GeoIPASNum.dat`,
//! `GeoIPASNumv6.dat`, `GeoIPCity.dat`, `GeoIPCityv6.dat`) for Apache mod_geoip, nginx's
//! geoip module and libGeoIP tools, plus a reader to check written files before install, and
//! the MaxMind download, zip checks and safe install used by the `geoip` job type.

pub mod archive;
mod asn;
mod build;
mod build_zip;
mod city;
pub mod cli;
mod country;
pub mod country_table;
mod csv;
pub mod dat;
pub mod download;
mod edition;
mod error;
pub mod guard;
pub mod install;
pub mod latin1;
pub mod license;
pub mod lock;
pub mod network;
mod offline;
pub mod reader;
mod record_data;
mod scratch;
mod source;
pub mod state;
pub mod stop;
pub mod tree;

pub use build::WrittenDat;
pub use build_zip::build_zip;
pub use error::GeoipError;
pub use guard::BuildGuard;
pub use offline::{build, build_guarded, BuildReport};
pub use reader::{verify_file, verify_samples, DatFile, Sample};
pub use source::EDITIONS;
