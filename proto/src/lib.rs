//! chatvault's events and gRPC APIs, generated from the `.proto` files beside this crate.
//! The record value of every topic is the protobuf encoding of that topic's event message.
#![allow(missing_docs, unreachable_pub, clippy::large_enum_variant, missing_debug_implementations)]

/// Encoded `FileDescriptorSet` of every chatvault proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/chatvault_descriptor.bin"));

pub mod common {
    pub mod v1 {
        tonic::include_proto!("chatvault.common.v1");
    }
}
pub mod chat {
    pub mod v1 {
        tonic::include_proto!("chatvault.chat.v1");
    }
}
pub mod ingest {
    pub mod v1 {
        tonic::include_proto!("chatvault.ingest.v1");
    }
}
pub mod storage {
    pub mod v1 {
        tonic::include_proto!("chatvault.storage.v1");
    }
}
pub mod files {
    pub mod v1 {
        tonic::include_proto!("chatvault.files.v1");
    }
}
pub mod storagenode {
    pub mod v1 {
        tonic::include_proto!("chatvault.storagenode.v1");
    }
}
pub mod users {
    pub mod v1 {
        tonic::include_proto!("chatvault.users.v1");
    }
}
pub mod audit {
    pub mod v1 {
        tonic::include_proto!("chatvault.audit.v1");
    }
}
pub mod snapshot {
    pub mod v1 {
        tonic::include_proto!("chatvault.snapshot.v1");
    }
}
pub mod backup {
    pub mod v1 {
        tonic::include_proto!("chatvault.backup.v1");
    }
}
pub mod bot {
    pub mod v1 {
        tonic::include_proto!("chatvault.bot.v1");
    }
}
