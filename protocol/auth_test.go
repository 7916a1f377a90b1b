package protocol

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAuthRoundTrip(t *testing.T) {
	for _, data := range [][]byte{[]byte("\x00alice\x00s3cret"), nil, []byte("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL")} {
		wire := AppendAuth(nil, MechSCRAMSHA256, data, 7)
		req, n, err := NewDecoder(Config{}).Decode(wire)
		require.NoError(t, err)
		require.Equal(t, len(wire), n)
		ar, ok := req.(*AuthRequest)
		require.True(t, ok, "%T", req)
		require.Equal(t, MechSCRAMSHA256, ar.Mechanism)
		require.Equal(t, string(data), string(ar.Data))
		require.EqualValues(t, 7, ar.OpaqueID)
	}
}

func TestAuthMalformed(t *testing.T) {
	for _, line := range []string{
		"auth PLAIN 7\r\n",            // too few tokens
		"auth PLAIN !!notb64 7\r\n",   // bad base64
		"auth plain AAAA 7\r\n",       // lower-case mechanism
		"auth PLAIN AAAA x\r\n",       // bad opaque
		"auth PLAIN AAAA 7 extra\r\n", // too many tokens
	} {
		_, _, err := NewDecoder(Config{}).Decode([]byte(line))
		require.Error(t, err, line)
		var pe *Error
		require.ErrorAs(t, err, &pe, line)
		require.False(t, pe.Fatal, "%q: a malformed auth keeps the connection: %v", line, err)
	}
}

func TestReplyDecoderReadsContinueAndUnauthorized(t *testing.T) {
	for _, code := range []int32{CodeContinue, CodeUnauthorized} {
		wire := AppendResultString(nil, code, 9, "challenge")
		d := NewReplyDecoder(Config{})
		rep, n, err := d.Decode(wire)
		require.NoError(t, err)
		require.Equal(t, len(wire), n)
		require.Equal(t, code, rep.Code)
		require.Equal(t, "challenge", string(rep.Body))
	}
}
