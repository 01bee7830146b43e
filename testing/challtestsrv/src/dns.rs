//! The mock DNS server: a Hickory `RequestHandler` answering from the shared state.

use crate::state::{
    ChallTestSrv, DnsAnswer, DnsData, DnsQueryType, DnsQuestion, DnsRequestEvent, dns_key,
};
use hickory_proto::op::{Metadata, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CAA, CNAME, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use std::str::FromStr;

/// TTL of every answer: zero, so that no resolver caches test data.
const TTL: u32 = 0;

/// Answers queries from a [`ChallTestSrv`].
pub(crate) struct DnsHandler {
    pub(crate) srv: ChallTestSrv,
}

fn name(s: &str) -> Option<Name> {
    Name::from_str(s).ok()
}

fn soa() -> Option<Record> {
    let rdata = SOA::new(
        name("ns.challtestsrv.invalid.")?,
        name("master.challtestsrv.invalid.")?,
        1,
        1,
        1,
        1,
        1,
    );
    Some(Record::from_rdata(
        name("challtestsrv.invalid.")?,
        TTL,
        RData::SOA(rdata),
    ))
}

fn caa_rdata(tag: &str, value: &str, flag: u8) -> CAA {
    let mut caa = CAA::new_issue(false, None, Vec::new());
    caa.issuer_critical = flag & 0x80 != 0;
    caa.reserved_flags = flag & 0x7f;
    caa.tag = tag.to_string();
    caa.value = value.as_bytes().to_vec();
    caa
}

/// Splits a TXT value into character-strings of at most 255 octets.
fn txt_rdata(value: &str) -> TXT {
    let chunks: Vec<&[u8]> = value.as_bytes().chunks(255).collect();
    if chunks.is_empty() {
        TXT::new(vec![String::new()])
    } else {
        TXT::from_bytes(chunks)
    }
}

fn build_records(answer: &DnsAnswer) -> Vec<Record> {
    let DnsAnswer::Records {
        cnames,
        owner,
        data,
    } = answer
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (from, to) in cnames {
        if let (Some(f), Some(t)) = (name(from), name(to)) {
            out.push(Record::from_rdata(f, TTL, RData::CNAME(CNAME(t))));
        }
    }
    let Some(owner) = name(owner) else {
        return out;
    };
    match data {
        DnsData::A(v) => out.extend(
            v.iter()
                .map(|ip| Record::from_rdata(owner.clone(), TTL, RData::A(A(*ip)))),
        ),
        DnsData::Aaaa(v) => out.extend(
            v.iter()
                .map(|ip| Record::from_rdata(owner.clone(), TTL, RData::AAAA(AAAA(*ip)))),
        ),
        DnsData::Txt(v) => out.extend(
            v.iter()
                .map(|t| Record::from_rdata(owner.clone(), TTL, RData::TXT(txt_rdata(t)))),
        ),
        DnsData::Caa(v) => out.extend(v.iter().map(|p| {
            Record::from_rdata(
                owner.clone(),
                TTL,
                RData::CAA(caa_rdata(&p.tag, &p.value, p.flag)),
            )
        })),
        DnsData::None => {}
    }
    out
}

#[async_trait::async_trait]
impl RequestHandler for DnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        metadata.recursion_available = true;

        let info = match request.request_info() {
            Ok(info) => info,
            Err(_) => {
                let resp = builder.error_msg(&request.metadata, ResponseCode::FormErr);
                return send(&mut response_handle, resp, &request.metadata).await;
            }
        };
        let qname = Name::from(info.query.name()).to_ascii();
        let qtype = info.query.query_type();
        self.srv.record_dns(DnsRequestEvent {
            question: DnsQuestion {
                name: qname.clone(),
                qtype: u16::from(qtype),
                qclass: u16::from(info.query.query_class()),
            },
            user_agent: String::new(),
        });
        let kind = match qtype {
            RecordType::A => DnsQueryType::A,
            RecordType::AAAA => DnsQueryType::Aaaa,
            RecordType::TXT => DnsQueryType::Txt,
            RecordType::CAA => DnsQueryType::Caa,
            RecordType::CNAME => DnsQueryType::Cname,
            _ => DnsQueryType::Other,
        };
        let answer = self.srv.dns_answer(&dns_key(&qname), kind);
        if matches!(answer, DnsAnswer::ServFail) {
            let resp = builder.error_msg(&request.metadata, ResponseCode::ServFail);
            return send(&mut response_handle, resp, &request.metadata).await;
        }
        let records = build_records(&answer);
        let soa: Vec<Record> = if records.is_empty() {
            soa().into_iter().collect()
        } else {
            Vec::new()
        };
        let resp = builder.build(
            metadata,
            records.iter(),
            std::iter::empty::<&Record>(),
            soa.iter(),
            std::iter::empty::<&Record>(),
        );
        send(&mut response_handle, resp, &request.metadata).await
    }
}

async fn send<'a, R: ResponseHandler>(
    handle: &mut R,
    resp: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    req_meta: &Metadata,
) -> ResponseInfo {
    match handle.send_response(resp).await {
        Ok(info) => info,
        Err(error) => {
            tracing::warn!(%error, "failed to send DNS response");
            let mut meta = Metadata::response_from_request(req_meta);
            meta.response_code = ResponseCode::ServFail;
            ResponseInfo::from(hickory_proto::op::Header {
                metadata: meta,
                counts: Default::default(),
            })
        }
    }
}
