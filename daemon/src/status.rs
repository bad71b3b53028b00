//! The one place where the daemon's errors become gRPC status codes (the pod manager's own,
//! `corral.v1.KubeService`'s, are chosen beside that service in `corral-kubelet`).

use corral_images::ImageError;
use corral_images::unpack::UnpackError;
use tonic::Status;

/// A full file system anywhere in the chain: the call failed for want of a resource,
/// RESOURCE_EXHAUSTED, whatever the operation was.
fn out_of_space(e: &(dyn std::error::Error + 'static)) -> bool {
    corral_fsutil::out_of_space(e)
}

/// Whether a message from another program (a CNI plugin, which reports only text) says a file
/// system is full or over quota: Go's texts for ENOSPC and EDQUOT, as the reference plugins
/// print them (host-local writing its reservation on a full disk).
fn says_out_of_space(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("no space left on device") || message.contains("disk quota exceeded")
}

/// Chooses the gRPC code for an image error; the message keeps the error's full context.
pub fn image_status(e: ImageError) -> Status {
    let message = error_chain(&e);
    if out_of_space(&e) {
        return Status::resource_exhausted(message);
    }
    match &e {
        ImageError::InvalidReference { .. } => Status::invalid_argument(message),
        ImageError::NotFound(_) | ImageError::RemoteNotFound { .. } => Status::not_found(message),
        ImageError::Unauthorized { .. } => Status::unauthenticated(message),
        ImageError::Registry { .. } => Status::unavailable(message),
        ImageError::Verification { .. } | ImageError::Malformed { .. } => {
            Status::data_loss(message)
        }
        ImageError::TooLarge { .. } => Status::resource_exhausted(message),
        ImageError::Unsupported { .. }
        | ImageError::HostsConfig { .. }
        | ImageError::Credentials { .. } => Status::failed_precondition(message),
        ImageError::Unpack { source, .. } => match source {
            UnpackError::Io { .. } => Status::internal(message),
            _ => Status::data_loss(message),
        },
        ImageError::Io { .. } | ImageError::Record { .. } | ImageError::Internal(_) => {
            Status::internal(message)
        }
    }
}

/// An error and its sources, joined with `: `, skipping sources already in the message.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let s = inner.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        src = inner.source();
    }
    out
}

/// Chooses the gRPC code for a pod or container error.
pub fn pod_status(e: crate::pods::PodError) -> Status {
    use crate::pods::PodError as E;
    use crate::spec::SpecError;
    let message = error_chain(&e);
    if out_of_space(&e) {
        return Status::resource_exhausted(message);
    }
    match e {
        E::NotFound(_) | E::Spec(SpecError::NotFound(_)) => Status::not_found(message),
        E::AlreadyExists(_) => Status::already_exists(message),
        E::InvalidArgument(_) | E::Spec(SpecError::InvalidArgument(_)) => {
            Status::invalid_argument(message)
        }
        E::FailedPrecondition(_) | E::Spec(SpecError::FailedPrecondition(_)) => {
            Status::failed_precondition(message)
        }
        E::DeadlineExceeded(_) => Status::deadline_exceeded(message),
        E::Image(inner) => image_status(inner),
        E::Network(inner) => network_status(inner, message),
        E::Runtime(corral_runtime::Error::InvalidSpec(_)) => Status::invalid_argument(message),
        E::Shim(_) => Status::unavailable(message),
        E::Corrupt(_) | E::Io { .. } | E::Spec(_) | E::Runtime(_) | E::Internal(_) => {
            Status::internal(message)
        }
    }
}

/// Chooses the gRPC code for a pod network error.
fn network_status(e: crate::network::NetworkError, message: String) -> Status {
    use crate::network::NetworkError as N;
    use corral_cni::Error as C;
    match e {
        N::Cni(C::Plugin { msg, .. }) | N::Builtin(msg) if says_out_of_space(&msg) => {
            Status::resource_exhausted(message)
        }
        N::InvalidArgument(_) => Status::invalid_argument(message),
        N::NotReady(_) | N::Cni(C::PluginNotFound { .. } | C::Config { .. }) => {
            Status::failed_precondition(message)
        }
        N::Cni(C::Timeout { .. }) => Status::deadline_exceeded(message),
        N::Exhausted(_) => Status::resource_exhausted(message),
        N::Cni(C::Plugin { .. } | C::BadResult { .. }) | N::Io { .. } | N::Builtin(_) => {
            Status::internal(message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_that_ran_out_of_space_is_resource_exhausted() {
        let plugin = |msg: &str| {
            crate::network::NetworkError::Cni(corral_cni::Error::Plugin {
                network: "corral".into(),
                plugin: "bridge".into(),
                command: "ADD",
                code: Some(999),
                msg: msg.into(),
            })
        };
        let full = plugin(
            "failed to allocate for range 0: write /var/lib/corral/cni/networks/corral/10.88.0.2: no space left on device",
        );
        let message = full.to_string();
        let status = network_status(full, message);
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().contains("no space left on device"));
        let other = plugin("failed to set bridge addr: permission denied");
        let message = other.to_string();
        assert_eq!(network_status(other, message).code(), tonic::Code::Internal);
        // The built-in network: a reservation on a full disk, a full subnet, anything else.
        use crate::network::NetworkError as N;
        for (e, code) in [
            (
                N::Builtin(
                    "IP reservations /r/10.88.0.2: No space left on device (os error 28)".into(),
                ),
                tonic::Code::ResourceExhausted,
            ),
            (
                N::Exhausted("no free address left in 10.88.0.0/16".into()),
                tonic::Code::ResourceExhausted,
            ),
            (
                N::Builtin("veth x: File exists".into()),
                tonic::Code::Internal,
            ),
        ] {
            let message = e.to_string();
            assert_eq!(network_status(e, message).code(), code);
        }
    }
}
