//! GeoLite2 CSV → legacy libGeoIP `.dat` files (`GeoIP.dat`, `GeoIPv6.dat`, `GeoIPASNum.dat`,
//! `GeoIPASNumv6.dat`, `GeoIPCity.dat`, `GeoIPCityv6.dat`) for Apache mod_geoip, nginx's
//! geoip module and libGeoIP tools, plus a reader to check written files before install, and
//! the MaxMind download, zip checks and safe install used by the `geoip` job type.

pub mod archive;
mod asn;
mod build;
mod city;
pub mod cli;
mod country;
pub mod country_table;
mod csv;
pub mod dat;
pub mod download;
mod error;
pub mod install;
pub mod latin1;
pub mod license;
pub mod lock;
pub mod network;
pub mod reader;
mod source;
pub mod state;
pub mod tree;

pub use build::{build_zip, BuiltFile};
pub use error::GeoipError;
pub use reader::{verify_samples, DatFile, Sample};

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// Builds the legacy files of every zip in `inputs` into `out_dir`, each written under a
/// temporary name and renamed into place once complete and checked against its samples.
pub fn build(inputs: &[PathBuf], out_dir: &Path) -> Result<Vec<BuiltFile>, GeoipError> {
    let mut all = Vec::new();
    for zip in inputs {
        let built = build_zip(zip, |name| {
            File::create(out_dir.join(temp_name(name)))
                .map(|f| BufWriter::with_capacity(1 << 20, f))
        });
        let built = match built {
            Ok(b) => b,
            Err(e) => {
                for name in ALL_FILES {
                    let _ = std::fs::remove_file(out_dir.join(temp_name(name)));
                }
                return Err(e);
            }
        };
        for b in &built {
            let tmp = out_dir.join(temp_name(b.file_name));
            let bytes = std::fs::read(&tmp).map_err(|e| GeoipError::io(&tmp, e))?;
            if let Err(e) = verify_samples(&bytes, &b.samples) {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            let dest = out_dir.join(b.file_name);
            std::fs::rename(&tmp, &dest).map_err(|e| GeoipError::io(&dest, e))?;
        }
        all.extend(built);
    }
    Ok(all)
}

/// Every file name a build may write.
pub const ALL_FILES: [&str; 6] = [
    "GeoIP.dat",
    "GeoIPv6.dat",
    "GeoIPASNum.dat",
    "GeoIPASNumv6.dat",
    "GeoIPCity.dat",
    "GeoIPCityv6.dat",
];

/// The temporary name a file is written under before its rename.
fn temp_name(name: &str) -> String {
    format!(".{name}.opsd-tmp")
}
