package config

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReplicationDefaults(t *testing.T) {
	r := mustParse(t, minimalINI).Replication()
	assert.Equal(t, Replication{SlaveID: -1, Mode: ReplicationSync, SlaveMaxDelay: 10 * time.Second}, r)
	assert.False(t, r.IsSlave())
}

func TestReplicationSlave(t *testing.T) {
	r := mustParse(t, minimalINI+"[replication]\nslaveId=2\nmode=ASYNC\nserveReads=true\nslaveMaxDelayInMills=500\nmasterAddr=127.0.0.1:8123\nminSyncSlaves=1\n").Replication()
	assert.Equal(t, Replication{Enabled: true, SlaveID: 2, Mode: ReplicationAsync, ServeReads: true, MinSyncSlaves: 1,
		SlaveMaxDelay: 500 * time.Millisecond, MasterAddr: "127.0.0.1:8123"}, r)
	assert.True(t, r.IsSlave())
}

func TestReplicationBadValues(t *testing.T) {
	for name, text := range map[string]string{
		"mode":        "mode=semi",
		"slaveId 0":   "slaveId=0",
		"slaveId big": "slaveId=5000",
		"masterAddr":  "masterAddr=nohostport",
		"min":         "minSyncSlaves=-1",
		"unknown key": "slaveID2=3",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(minimalINI+"[replication]\n"+text+"\n"), "ini", WithoutEnv())
			require.Error(t, err)
			var ce *Error
			require.True(t, errors.As(err, &ce), "%v", err)
			assert.Equal(t, sectionReplication, ce.Section, "%v", err)
		})
	}
}

// The shipped sample slave configuration loads and is a sync slave.
func TestSampleSlaveConf(t *testing.T) {
	c, err := Load("../../conf/slave.ini", WithoutEnv())
	require.NoError(t, err)
	r := c.Replication()
	assert.Equal(t, 1, r.SlaveID)
	assert.Equal(t, ReplicationSync, r.Mode)
	_, err = Load("../../conf/server.ini", WithoutEnv())
	require.NoError(t, err)
}
