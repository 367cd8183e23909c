//! Platforms (os/architecture/variant): the host's, or one given as `linux/arm64/v8`, and the
//! choice of a manifest from a multi-platform index.

use std::fmt;

use super::error::{ImageError, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of this machine.
    pub fn host() -> Self {
        let architecture = normalize_arch(std::env::consts::ARCH);
        let variant = default_variant(&architecture);
        Platform { os: "linux".into(), architecture, variant }
    }

    /// Parses `os/arch[/variant]` (or `arch` alone, meaning linux).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || ImageError::InvalidPlatform { platform: s.to_string() };
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        let (os, arch, variant) = match parts.as_slice() {
            [arch] => ("linux", *arch, None),
            [os, arch] => (*os, *arch, None),
            [os, arch, v] => (*os, *arch, Some(v.to_string())),
            _ => return Err(bad()),
        };
        let architecture = normalize_arch(&arch.to_ascii_lowercase());
        let variant = variant.or_else(|| default_variant(&architecture));
        Ok(Platform { os: os.to_ascii_lowercase(), architecture, variant })
    }

    /// True when an image for (`os`, `arch`, `variant`) runs here; a missing variant matches
    /// the default one.
    pub fn matches(&self, os: &str, arch: &str, variant: Option<&str>) -> bool {
        let arch = normalize_arch(arch);
        if os != self.os || arch != self.architecture {
            return false;
        }
        let want = self.variant.as_deref();
        let have = variant.map(str::to_string).or_else(|| default_variant(&arch));
        want.is_none() || have.is_none() || want == have.as_deref()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

fn normalize_arch(a: &str) -> String {
    match a {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i686" | "i586" | "i486" | "x86" => "386",
        "armhf" | "armel" | "arm" => "arm",
        "powerpc64le" => "ppc64le",
        other => other,
    }
    .to_string()
}

fn default_variant(arch: &str) -> Option<String> {
    match arch {
        "arm64" => Some("v8".into()),
        "arm" => Some("v7".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let p = Platform::parse("linux/amd64").unwrap();
        assert!(p.matches("linux", "amd64", None));
        assert!(!p.matches("linux", "arm64", None));
        let p = Platform::parse("linux/arm64").unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(p.matches("linux", "arm64", None));
        assert!(p.matches("linux", "arm64", Some("v8")));
        let p = Platform::parse("linux/arm/v6").unwrap();
        assert!(!p.matches("linux", "arm", Some("v7")));
        assert!(p.matches("linux", "arm", Some("v6")));
        assert!(Platform::parse("linux//x").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
    }
}
