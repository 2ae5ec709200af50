//! A minimal XML-RPC client for the Koji hub: requests are written as text
//! (escaped), answers read with roxmltree, which refuses DTDs and so entity
//! expansion bombs. Only what koji speaks is supported.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// An answer is read at most this far: a hub reply larger than this is not
/// a list of RPMs but a fault in the service.
const MAX_RESPONSE: u64 = 64 << 20;

/// koji's `ServerOffline` fault: the hub is up but not serving, so retrying
/// later helps.
const SERVER_OFFLINE: i64 = 1014;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Double(f64),
    Nil,
    Array(Vec<Value>),
    Struct(BTreeMap<String, Value>),
}

impl Value {
    /// koji's keyword arguments: a trailing struct marked `__starstar`.
    pub fn kwargs<const N: usize>(pairs: [(&str, Value); N]) -> Value {
        let mut m: BTreeMap<String, Value> =
            pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        m.insert("__starstar".into(), Value::Bool(true));
        Value::Struct(m)
    }

    pub fn str(s: &str) -> Value {
        Value::Str(s.to_string())
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Struct(m) => m.get(key),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum XmlRpcError {
    #[error("cannot reach the Koji hub at {url} ({method})")]
    Transport {
        url: String,
        method: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the Koji hub at {url} answered {method} with HTTP {status}")]
    Status {
        url: String,
        method: String,
        status: u16,
    },
    #[error("cannot read the Koji hub's answer to {method} from {url}")]
    Read {
        url: String,
        method: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the Koji hub at {url} sent more than {} MiB for {method}", MAX_RESPONSE >> 20)]
    TooLarge { url: String, method: String },
    #[error("the Koji hub's answer to {method} is not XML")]
    Parse {
        method: String,
        #[source]
        source: roxmltree::Error,
    },
    #[error("the Koji hub's answer to {method} is not XML-RPC: {what}")]
    Malformed { method: String, what: String },
    #[error("Koji {method} failed: fault {code}: {message}")]
    Fault {
        method: String,
        code: i64,
        message: String,
    },
}

impl XmlRpcError {
    /// A fault is the hub refusing the request (no such tag, bad NVR), so
    /// the job's; everything else is the service's.
    pub fn is_infrastructure(&self) -> bool {
        match self {
            XmlRpcError::Fault { code, .. } => *code == SERVER_OFFLINE,
            _ => true,
        }
    }
}

pub struct Client<'a> {
    pub http: &'a reqwest::blocking::Client,
    pub url: &'a str,
}

impl Client<'_> {
    pub fn call(&self, method: &str, params: &[Value]) -> Result<Value, XmlRpcError> {
        let url = crate::util::redact_url(self.url);
        let transport = |source| XmlRpcError::Transport {
            url: url.clone(),
            method: method.to_string(),
            source,
        };
        let resp = self
            .http
            .post(self.url)
            .header("Content-Type", "text/xml")
            .body(encode_call(method, params))
            .send()
            .map_err(transport)?;
        if !resp.status().is_success() {
            return Err(XmlRpcError::Status {
                url,
                method: method.into(),
                status: resp.status().as_u16(),
            });
        }
        let body = super::http::read_bounded(resp, MAX_RESPONSE)
            .map_err(|source| XmlRpcError::Read {
                url: url.clone(),
                method: method.into(),
                source,
            })?
            .ok_or_else(|| XmlRpcError::TooLarge {
                url: url.clone(),
                method: method.into(),
            })?;
        decode_response(method, &String::from_utf8_lossy(&body))
    }

    /// koji's `multiCall`: one round trip; each answer is the value or the
    /// fault of its call.
    pub fn multicall(
        &self,
        calls: &[(&str, Vec<Value>)],
    ) -> Result<Vec<Result<Value, XmlRpcError>>, XmlRpcError> {
        let list = calls
            .iter()
            .map(|(m, p)| {
                Value::Struct(BTreeMap::from([
                    ("methodName".to_string(), Value::str(m)),
                    ("params".to_string(), Value::Array(p.clone())),
                ]))
            })
            .collect();
        let answer = self.call("multiCall", &[Value::Array(list)])?;
        let items = answer
            .as_array()
            .ok_or_else(|| malformed("multiCall", "not a list"))?;
        if items.len() != calls.len() {
            return Err(malformed("multiCall", "one answer per call expected"));
        }
        Ok(items
            .iter()
            .zip(calls)
            .map(|(item, (method, _))| match item {
                Value::Array(one) if one.len() == 1 => Ok(one[0].clone()),
                Value::Struct(_) => Err(fault(method, item)),
                _ => Err(malformed(
                    method,
                    "multiCall item is neither [value] nor a fault",
                )),
            })
            .collect())
    }
}

fn malformed(method: &str, what: &str) -> XmlRpcError {
    XmlRpcError::Malformed {
        method: method.into(),
        what: what.into(),
    }
}

fn fault(method: &str, v: &Value) -> XmlRpcError {
    XmlRpcError::Fault {
        method: method.into(),
        code: v.get("faultCode").and_then(Value::as_i64).unwrap_or(0),
        message: v
            .get("faultString")
            .and_then(Value::as_str)
            .unwrap_or("")
            .into(),
    }
}

fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

fn encode_value(v: &Value, out: &mut String) {
    out.push_str("<value>");
    match v {
        Value::Str(s) => {
            out.push_str("<string>");
            escape(s, out);
            out.push_str("</string>");
        }
        Value::Int(i) if i32::try_from(*i).is_ok() => {
            let _ = write!(out, "<int>{i}</int>");
        }
        Value::Int(i) => {
            let _ = write!(out, "<i8>{i}</i8>");
        }
        Value::Bool(b) => {
            let _ = write!(out, "<boolean>{}</boolean>", u8::from(*b));
        }
        Value::Double(d) => {
            let _ = write!(out, "<double>{d:?}</double>");
        }
        Value::Nil => out.push_str("<nil/>"),
        Value::Array(items) => {
            out.push_str("<array><data>");
            items.iter().for_each(|i| encode_value(i, out));
            out.push_str("</data></array>");
        }
        Value::Struct(members) => {
            out.push_str("<struct>");
            for (k, v) in members {
                out.push_str("<member><name>");
                escape(k, out);
                out.push_str("</name>");
                encode_value(v, out);
                out.push_str("</member>");
            }
            out.push_str("</struct>");
        }
    }
    out.push_str("</value>");
}

pub fn encode_call(method: &str, params: &[Value]) -> String {
    let mut out = String::from("<?xml version=\"1.0\"?>\n<methodCall><methodName>");
    escape(method, &mut out);
    out.push_str("</methodName><params>");
    for p in params {
        out.push_str("<param>");
        encode_value(p, &mut out);
        out.push_str("</param>");
    }
    out.push_str("</params></methodCall>\n");
    out
}

fn elements<'a, 'i>(n: roxmltree::Node<'a, 'i>) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    n.children().filter(|c| c.is_element())
}

fn child<'a, 'i>(
    method: &str,
    n: roxmltree::Node<'a, 'i>,
    name: &str,
) -> Result<roxmltree::Node<'a, 'i>, XmlRpcError> {
    elements(n)
        .find(|c| c.tag_name().name() == name)
        .ok_or_else(|| {
            malformed(
                method,
                &format!("<{}> without <{name}>", n.tag_name().name()),
            )
        })
}

fn decode_value(method: &str, v: roxmltree::Node) -> Result<Value, XmlRpcError> {
    let Some(t) = elements(v).next() else {
        return Ok(Value::Str(v.text().unwrap_or("").to_string()));
    };
    let text = t.text().unwrap_or("").trim();
    let bad = |what: &str| malformed(method, &format!("bad <{what}>: {text:?}"));
    Ok(match t.tag_name().name() {
        "string" | "dateTime.iso8601" | "base64" => Value::Str(t.text().unwrap_or("").into()),
        "int" | "i4" | "i8" => Value::Int(text.parse().map_err(|_| bad("int"))?),
        "boolean" => match text {
            "1" => Value::Bool(true),
            "0" => Value::Bool(false),
            _ => return Err(bad("boolean")),
        },
        "double" => Value::Double(text.parse().map_err(|_| bad("double"))?),
        "nil" => Value::Nil,
        "array" => Value::Array(
            elements(child(method, t, "data")?)
                .map(|c| decode_value(method, c))
                .collect::<Result<_, _>>()?,
        ),
        "struct" => {
            let mut m = BTreeMap::new();
            for member in elements(t) {
                let name = child(method, member, "name")?.text().unwrap_or("");
                m.insert(
                    name.to_string(),
                    decode_value(method, child(method, member, "value")?)?,
                );
            }
            Value::Struct(m)
        }
        other => return Err(malformed(method, &format!("unknown type <{other}>"))),
    })
}

pub fn decode_response(method: &str, text: &str) -> Result<Value, XmlRpcError> {
    let doc = roxmltree::Document::parse(text).map_err(|source| XmlRpcError::Parse {
        method: method.into(),
        source,
    })?;
    let root = doc.root_element();
    if root.tag_name().name() != "methodResponse" {
        return Err(malformed(method, "no <methodResponse>"));
    }
    if let Some(f) = elements(root).find(|c| c.tag_name().name() == "fault") {
        return Err(fault(
            method,
            &decode_value(method, child(method, f, "value")?)?,
        ));
    }
    let param = child(method, child(method, root, "params")?, "param")?;
    decode_value(method, child(method, param, "value")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_escaped_values_and_kwargs() {
        let body = encode_call(
            "listRPMs",
            &[
                Value::str("a<&>b"),
                Value::Int(5_000_000_000),
                Value::Nil,
                Value::kwargs([("arches", Value::Array(vec![Value::str("x86_64")]))]),
            ],
        );
        assert!(body.contains("<string>a&lt;&amp;&gt;b</string>"), "{body}");
        assert!(body.contains("<i8>5000000000</i8>"));
        assert!(body.contains("<nil/>"));
        assert!(body.contains(
            "<member><name>__starstar</name><value><boolean>1</boolean></value></member>"
        ));
        // Round trip through the decoder, as a response.
        let resp = body
            .replace("methodCall", "methodResponse")
            .replace("<methodName>listRPMs</methodName>", "");
        assert_eq!(decode_response("m", &resp).ok(), Some(Value::str("a<&>b")));
    }

    #[test]
    fn decodes_every_type() {
        let xml = r#"<?xml version="1.0"?><methodResponse><params><param><value><array><data>
            <value>bare</value><value><i4>-3</i4></value><value><boolean>1</boolean></value>
            <value><double>1.5</double></value><value><nil/></value>
            <value><dateTime.iso8601>20260101T00:00:00</dateTime.iso8601></value>
            <value><base64>aGk=</base64></value>
            <value><struct><member><name>id</name><value><int>7</int></value></member></struct></value>
            </data></array></value></param></params></methodResponse>"#;
        let v = decode_response("m", xml).expect("decodes");
        let a = v.as_array().expect("array");
        assert_eq!(a[0], Value::str("bare"));
        assert_eq!(a[1], Value::Int(-3));
        assert_eq!(a[2], Value::Bool(true));
        assert_eq!(a[3], Value::Double(1.5));
        assert_eq!(a[4], Value::Nil);
        assert_eq!(a[5], Value::str("20260101T00:00:00"));
        assert_eq!(a[6], Value::str("aGk="));
        assert_eq!(a[7].get("id"), Some(&Value::Int(7)));
    }

    #[test]
    fn faults_name_the_method() {
        let xml = "<methodResponse><fault><value><struct>\
            <member><name>faultCode</name><value><int>1000</int></value></member>\
            <member><name>faultString</name><value><string>No such tagInfo: 'x'</string></value></member>\
            </struct></value></fault></methodResponse>";
        let e = decode_response("listTagged", xml).expect_err("fault");
        assert_eq!(
            e.to_string(),
            "Koji listTagged failed: fault 1000: No such tagInfo: 'x'"
        );
        assert!(!e.is_infrastructure());
        assert!(decode_response("m", "<html>").is_err());
        assert!(decode_response("m", "<methodResponse/>").is_err());
        let dtd = "<!DOCTYPE x [<!ENTITY a \"aa\">]><methodResponse/>";
        assert!(decode_response("m", dtd).is_err());
    }
}
