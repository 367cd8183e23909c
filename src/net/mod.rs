//! Networking: netlink links, bridges and veths, IPAM, the nftables firewall, published ports and
//! the embedded DNS resolver.
