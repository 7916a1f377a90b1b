// Package protocol implements the MetaQ 1.4 wire format: request and reply
// lines, the message-set codec, checksums, reply and XA error codes,
// transaction keys and stats bodies. It uses the standard library only.
//
// # Frames
//
// A request is a text line of tokens separated by exactly one space and ended
// by CRLF, optionally followed by a binary body whose length the line gives:
//
//	put <topic> <partition> <len> <flag> <checksum> <opaque>\r\n<len bytes>
//	put <topic> <partition> <len> <flag> <checksum> <txKey> <opaque>\r\n<len bytes>
//	put <topic> <partition> <len> <flag> <opaque>\r\n<len bytes>          (legacy)
//	put <topic> <partition> <len> <flag> <txKey> <opaque>\r\n<len bytes>  (legacy)
//	get <topic> <group> <partition> <offset> <maxSize> <opaque>\r\n
//	offset <topic> <group> <partition> <offset> <opaque>\r\n
//	version [<opaque>]\r\n
//	stats [<item> [<opaque>]]\r\n    (empty item: "stats  <opaque>")
//	quit\r\n
//	transaction <txKey> <sessionId> <TYPE> [<timeoutSecs>] [<uniqueQualifier>] <opaque>\r\n
//	sync <topic> <partition> <len> <flag> <msgId> [<checksum>] <opaque>\r\n<len bytes>
//
// Replies are
//
//	result <code> <bodyLen> <opaque>\r\n<bodyLen bytes>
//	value <totalLen> <opaque>\r\n<totalLen bytes of message set>
//
// The opaque is a client-chosen int32 echoed in the reply; version and stats
// sent without one are answered with 2147483647 (NoOpaque). Numbers are
// canonical decimals as Java's Integer.toString/Long.toString write them:
// "0", or an optional '-' and digits without leading zeros ("+1", "01", "-0"
// are rejected). In a 7-token put the 6th token is a checksum when it starts
// with a digit or '-', else a transaction key.
//
// # Decoding
//
// Decoder and ReplyDecoder are streaming decoders for an event loop such as
// gnet: give them all buffered bytes; they return one complete frame and the
// bytes it used, or "need more" (0 bytes), without copying bodies (a body
// aliases the input). Limits (Config) bound the line length and the declared
// body size so that a slow or hostile peer cannot pin memory. Errors are
// *Error values that carry the reply code, a message fit to send back, and
// whether the connection must be closed (Fatal) or replied to at all
// (NoReply, for an unknown verb).
//
// # Message sets
//
// A message on disk and in a value reply is a 20-byte big-endian header —
// int32 length of the put data, int32 checksum (CRC-32 IEEE & 0x7FFFFFFF),
// int64 message id, int32 flag — followed by the put data. Put data is the
// payload, or, when flag bit 0 (FlagAttribute) is set, an int32 attribute
// length, the attribute's UTF-8 bytes and the payload. MessageIterator reads
// a set, stopping at the first incomplete message.
package protocol
