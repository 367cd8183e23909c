//! Adds and deletes elements of berth's nftables maps over netlink (`NETLINK_NETFILTER`), in one
//! transaction, without starting the `nft` binary. This is the only per-container firewall change
//! (publishing ports), so a container start costs a netlink round trip instead of a process.
//! Tables, chains and rules are still written by `nft` with JSON (see [`super::firewall`]).

use std::io;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 0x2;
const NLMSG_DONE: u16 = 0x3;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_INET: u8 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;

/// One map element: the key as the kernel stores it (each concatenated field padded to 4
/// bytes) and, for an add, its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elem {
    pub map: &'static str,
    pub key: Vec<u8>,
    pub data: Vec<u8>,
}

/// Appends an attribute, padded to 4 bytes.
fn attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

fn nested(buf: &mut Vec<u8>, ty: u16, fill: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    fill(&mut inner);
    attr(buf, ty | NLA_F_NESTED, &inner);
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// One netlink message with the nfgenmsg header.
fn message(out: &mut Vec<u8>, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16, attrs: &[u8]) {
    let len = 16 + 4 + attrs.len();
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.push(family);
    out.push(0);
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(attrs);
}

/// The transaction that adds (or deletes) `elems` in table `inet <table>`.
fn batch(table: &str, add: bool, elems: &[Elem], seq0: u32) -> (Vec<u8>, Vec<u32>) {
    let mut out = Vec::new();
    let mut acks = Vec::new();
    let mut seq = seq0;
    message(&mut out, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES, &[]);
    let mut maps: Vec<&'static str> = elems.iter().map(|e| e.map).collect();
    maps.sort();
    maps.dedup();
    for map in maps {
        seq += 1;
        let mut attrs = Vec::new();
        attr(&mut attrs, NFTA_SET_ELEM_LIST_TABLE, &cstr(table));
        attr(&mut attrs, NFTA_SET_ELEM_LIST_SET, &cstr(map));
        nested(&mut attrs, NFTA_SET_ELEM_LIST_ELEMENTS, |list| {
            for e in elems.iter().filter(|e| e.map == map) {
                nested(list, NFTA_LIST_ELEM, |el| {
                    nested(el, NFTA_SET_ELEM_KEY, |k| attr(k, NFTA_DATA_VALUE, &e.key));
                    if add {
                        nested(el, NFTA_SET_ELEM_DATA, |d| attr(d, NFTA_DATA_VALUE, &e.data));
                    }
                });
            }
        });
        let (ty, flags) = if add {
            (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE)
        } else {
            (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK)
        };
        message(&mut out, (NFNL_SUBSYS_NFTABLES << 8) | ty, flags, seq, NFPROTO_INET, 0, &attrs);
        acks.push(seq);
    }
    seq += 1;
    message(&mut out, NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES, &[]);
    (out, acks)
}

/// Adds (`add`) or deletes the elements in one transaction: all or none apply.
pub fn apply(table: &str, add: bool, elems: &[Elem]) -> io::Result<()> {
    if elems.is_empty() {
        return Ok(());
    }
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let seq0: u32 = rand::random::<u32>() >> 1;
    let (msg, mut waiting) = batch(table, add, elems, seq0);
    socket.send(&msg, 0)?;
    let mut buf = vec![0u8; 16384];
    while !waiting.is_empty() {
        let n = socket.recv(&mut &mut buf[..], 0)?;
        let mut off = 0;
        while off + 16 <= n {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes")) as usize;
            let ty = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().expect("2 bytes"));
            let seq = u32::from_ne_bytes(buf[off + 8..off + 12].try_into().expect("4 bytes"));
            if ty == NLMSG_ERROR && off + 20 <= n {
                let code = i32::from_ne_bytes(buf[off + 16..off + 20].try_into().expect("4 bytes"));
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(-code));
                }
                waiting.retain(|s| *s != seq);
            } else if ty == NLMSG_DONE {
                waiting.retain(|s| *s != seq);
            }
            if len < 16 {
                break;
            }
            off += len.next_multiple_of(4);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_layout() {
        let e = Elem { map: "p4any_a", key: vec![6, 0, 0, 0, 0x1f, 0x90, 0, 0], data: vec![10, 210, 0, 2] };
        let (b, acks) = batch("berth-x", true, &[e], 7);
        assert_eq!(acks, vec![8]);
        // begin (20 bytes), the element message, end (20 bytes).
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), NFNL_MSG_BATCH_BEGIN);
        let len = u32::from_ne_bytes(b[20..24].try_into().unwrap()) as usize;
        assert_eq!(u16::from_ne_bytes([b[24], b[25]]), (10 << 8) | 12);
        assert_eq!(b.len(), 20 + len + 20);
        assert_eq!(len % 4, 0);
    }
}
