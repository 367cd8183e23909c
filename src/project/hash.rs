//! The config hash of a service, as compose labels containers with it
//! (`com.docker.compose.config-hash`): the sha256 of the service's canonical JSON with the fields
//! that must not recreate a container left out: build, pull_policy, scale, deploy.replicas,
//! depends_on and profiles.

use sha2::{Digest, Sha256};

use super::model::{Service, with_mode};

/// The hex sha256 of the service's canonical JSON, without build, pull_policy, scale,
/// deploy.replicas, depends_on and profiles.
pub fn service_hash(s: &Service) -> String {
    let mut s = s.clone();
    s.build = None;
    s.pull_policy = None;
    s.scale = None;
    if let Some(d) = &mut s.deploy {
        d.replicas = None;
    }
    s.depends_on.clear();
    s.profiles.clear();
    let json = with_mode(true, || serde_json::to_vec(&s).unwrap_or_default());
    hex::encode(Sha256::digest(&json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_scale_and_dependencies_but_not_image() {
        let a = Service { name: "web".into(), image: Some("busybox".into()), ..Default::default() };
        let mut b = a.clone();
        b.scale = Some(3);
        b.profiles = vec!["p".into()];
        assert_eq!(service_hash(&a), service_hash(&b));
        b.image = Some("alpine".into());
        assert_ne!(service_hash(&a), service_hash(&b));
        assert_eq!(service_hash(&a).len(), 64);
    }
}
