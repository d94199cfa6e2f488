import Foundation
import RagCore
import RagWire

// Key management RPCs (admin keys only; see Authorizer.minimumRole).
extension RagService {
    var keyHandlers: [String: RPCHandler] {
        [
            RagMethod.createKey.rawValue: .unary { try await createKey($0, $1) },
            RagMethod.listKeys.rawValue: .unary { try listKeys($0, $1) },
            RagMethod.revokeKey.rawValue: .unary { try await revokeKey($0, $1) },
        ]
    }

    func keys() throws(RagError) -> Authorizer {
        guard let authorizer else { throw RagError(.unimplemented, "keys are not managed on this node") }
        return authorizer
    }

    func createKey(_ payload: Data, _ ctx: CallContext) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_CreateKeyRequest.self, from: payload)
        // A collection-limited admin cannot mint a key wider than itself.
        for c in r.collections { try ctx.principal.require(collection: c) }
        if r.collections.isEmpty { try ctx.principal.requireAllCollections(for: "a key for every collection") }
        let (record, token) = try await keys().create(name: r.name, role: try KeyRole(parsing: r.role), collections: r.collections,
                                                queriesPerSecond: r.queriesPerSecond, documentsPerSecond: r.documentsPerSecond)
        ctx.logger.notice("created key \(record.id) (\(record.role.rawValue)) named \(record.name.debugDescription)")
        return try FrameCodec.bytes(Ragd_V1_CreateKeyResponse.with {
            $0.key = record.wire
            $0.token = token.text
        })
    }

    func listKeys(_ payload: Data, _ ctx: CallContext) throws -> Data {
        _ = try FrameCodec.payload(Ragd_V1_ListKeysRequest.self, from: payload)
        return try FrameCodec.bytes(Ragd_V1_ListKeysResponse.with { $0.keys = (try? keys().list().map(\.wire)) ?? [] })
    }

    func revokeKey(_ payload: Data, _ ctx: CallContext) async throws -> Data {
        let r = try FrameCodec.payload(Ragd_V1_RevokeKeyRequest.self, from: payload)
        let record = try await keys().revoke(id: r.id)
        ctx.logger.notice("revoked key \(record.id)")
        return try FrameCodec.bytes(Ragd_V1_RevokeKeyResponse.with { $0.key = record.wire })
    }
}

extension APIKeyRecord {
    var wire: Ragd_V1_ApiKey {
        Ragd_V1_ApiKey.with {
            $0.id = id
            $0.name = name
            $0.role = role.rawValue
            $0.collections = collections
            $0.createdAt = createdAt
            $0.revoked = revoked
            $0.queriesPerSecond = queriesPerSecond
            $0.documentsPerSecond = documentsPerSecond
        }
    }
}
