/* clinic-edge's journal for mosquitto 2.0 (plugin API v5): every QoS 1/2 message on the devices'
 * readings topic is appended to a journal file and fdatasync'ed before the broker answers the
 * device. mosquitto calls MOSQ_EVT_MESSAGE callbacks in handle__publish() before it queues the
 * message and before send__puback() (docs/mqtt.md, "The broker's journal"), so a device gets a
 * PUBACK only for a message that is on disk. If the write fails the callback returns an error:
 * the broker drops the message and the connection, the device gets no PUBACK and sends again.
 *
 * Each message is tagged with the MQTT v5 user property "clinic-journal" = "<epoch>:<seq>"
 * (epoch: 16 hex digits, random per journal; seq: the record's number), which ingest uses as the
 * message's delivery identity; ingest replays records it has not committed (journal.py).
 *
 * Files, in plugin_opt_dir: seg-<first seq, 20 digits>.jnl, each preallocated with written zeros
 * (so an fdatasync writes the data page only, no extent or size change). A segment starts with a
 * 32-byte header ("CEJRNL01", epoch u64, first seq u64, 8 zero bytes); records follow, 8-byte
 * aligned, little-endian:
 *   u32 magic 0x4C4E524A, u32 length of the whole record (padded), u64 seq,
 *   u16 client id length, u16 topic length, u32 payload length,
 *   client id, topic, payload, u32 CRC-32 (IEEE, as zlib) of everything before it, zero padding.
 * A zero magic ends a segment; anything else that does not check is a torn record.
 *
 * Records are written with O_DIRECT, whole 512-byte sectors (the 4 KiB page holding the
 * segment's end is kept in memory): each reading costs the one or two sectors its record spans,
 * not a 4 KiB block, and no page-cache folio is dirtied (Linux 6.16+ gives ext4 large folios).
 * The segment is preallocated and already written, so an overwrite of its sectors changes no
 * extent or size and the fdatasync writes those sectors only (docs/mqtt.md, "What a reading
 * writes"). A device or file system that needs whole 4 KiB blocks for O_DIRECT refuses the
 * first sector write (EINVAL): the journal then writes whole pages. Where O_DIRECT is refused
 * altogether (tmpfs) writes are buffered.
 *
 * Options: plugin_opt_dir (required), plugin_opt_topic (default devices/+/readings),
 * plugin_opt_segment_bytes (default 1 MiB).
 */
#define _GNU_SOURCE   /* O_DIRECT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mosquitto_broker.h"
#include "mosquitto_plugin.h"
#include "mosquitto.h"
#include "mqtt_protocol.h"

#define SEGMENT_MAGIC "CEJRNL01"
#define SEGMENT_HEADER 32
#define RECORD_MAGIC 0x4C4E524Au
#define RECORD_HEADER 24
#define PROPERTY_NAME "clinic-journal"
#define PAGE 4096
#define SECTOR 512

struct journal {
	char dir[4096];
	char topic[512];
	uint64_t segment_bytes;
	uint64_t epoch;
	uint64_t next_seq;
	uint64_t offset;      /* where the next record goes in the open segment */
	uint64_t size;        /* the open segment's size */
	int fd;
	int fresh_segment;    /* after a failed write: start a new file before the next record */
	size_t unit;          /* what one write covers: SECTOR, or PAGE where O_DIRECT needs pages */
	unsigned char *tail;  /* the segment's page holding `offset`, as on disk (PAGE bytes, aligned) */
};

static mosquitto_plugin_id_t *plugin_id = NULL;
static struct journal jn;
static uint32_t crc_table[256];

static void crc_init(void)
{
	for(uint32_t i = 0; i < 256; i++){
		uint32_t c = i;
		for(int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t crc32_ieee(const unsigned char *p, size_t n)
{
	uint32_t c = 0xFFFFFFFFu;
	while(n--) c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
	return c ^ 0xFFFFFFFFu;
}

static void put32(unsigned char *p, uint32_t v){ for(int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8*i)); }
static void put64(unsigned char *p, uint64_t v){ for(int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8*i)); }
static void put16(unsigned char *p, uint16_t v){ p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static uint32_t get32(const unsigned char *p){ uint32_t v = 0; for(int i = 3; i >= 0; i--) v = (v << 8) | p[i]; return v; }
static uint64_t get64(const unsigned char *p){ uint64_t v = 0; for(int i = 7; i >= 0; i--) v = (v << 8) | p[i]; return v; }
static uint16_t get16(const unsigned char *p){ return (uint16_t)(p[0] | (p[1] << 8)); }

static int write_all(int fd, const void *buf, size_t n, off_t at)
{
	const unsigned char *p = buf;
	while(n > 0){
		ssize_t w = pwrite(fd, p, n, at);
		if(w < 0){
			if(errno == EINTR) continue;
			return -1;
		}
		p += w; n -= (size_t)w; at += w;
	}
	return 0;
}

static int sync_dir(const char *dir)
{
	int d = open(dir, O_RDONLY | O_DIRECTORY);
	if(d < 0) return -1;
	int rc = fsync(d);
	close(d);
	return rc;
}

/* The same file again with O_DIRECT (buffered where the file system refuses it); the page
 * holding the segment's end is read into jn.tail. */
static int reopen_direct(const char *path, int fd)
{
	int dfd = open(path, O_RDWR | O_CLOEXEC | O_DIRECT);
	if(dfd < 0 && errno == EINVAL) dfd = open(path, O_RDWR | O_CLOEXEC);
	if(dfd < 0) return -1;
	memset(jn.tail, 0, PAGE);
	if(pread(fd, jn.tail, PAGE, (off_t)(jn.offset & ~(uint64_t)(PAGE - 1))) < 0){
		close(dfd);
		return -1;
	}
	close(fd);
	if(jn.fd >= 0) close(jn.fd);
	jn.fd = dfd;
	return 0;
}

/* A new segment starting at first_seq: written zeros, fsync'ed, renamed into place, dir fsync'ed. */
static int segment_create(uint64_t first_seq, uint64_t size)
{
	char tmp[4200], path[4200];
	static unsigned char zeros[65536];
	unsigned char header[SEGMENT_HEADER] = {0};

	snprintf(path, sizeof(path), "%s/seg-%020" PRIu64 ".jnl", jn.dir, first_seq);
	snprintf(tmp, sizeof(tmp), "%s/.seg-%020" PRIu64 ".tmp", jn.dir, first_seq);
	int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if(fd < 0) return -1;
	for(uint64_t at = 0; at < size; at += sizeof(zeros)){
		size_t n = size - at < sizeof(zeros) ? (size_t)(size - at) : sizeof(zeros);
		if(write_all(fd, zeros, n, (off_t)at)) goto fail;
	}
	memcpy(header, SEGMENT_MAGIC, 8);
	put64(header + 8, jn.epoch);
	put64(header + 16, first_seq);
	if(write_all(fd, header, sizeof(header), 0) || fsync(fd) || rename(tmp, path) || sync_dir(jn.dir)) goto fail;
	jn.offset = SEGMENT_HEADER;
	jn.size = size;
	jn.fresh_segment = 0;
	return reopen_direct(path, fd);
fail:
	close(fd);
	unlink(tmp);
	return -1;
}

/* The segment with the highest first seq, or 0 if there is none. */
static uint64_t last_segment(void)
{
	uint64_t best = 0;
	DIR *d = opendir(jn.dir);
	if(!d) return 0;
	struct dirent *e;
	while((e = readdir(d))){
		unsigned long long s;
		char tail[8];
		if(sscanf(e->d_name, "seg-%20llu.%4s", &s, tail) == 2 && !strcmp(tail, "jnl") && s > best) best = s;
	}
	closedir(d);
	return best;
}

/* Open the last segment and find its end; a torn tail is zeroed (it was never acknowledged). */
static int journal_open(void)
{
	char path[4200];
	unsigned char header[SEGMENT_HEADER], rec[RECORD_HEADER];
	uint64_t first = last_segment();

	if(first == 0){
		if(getrandom(&jn.epoch, sizeof(jn.epoch), 0) != sizeof(jn.epoch)) jn.epoch = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
		jn.next_seq = 1;
		return segment_create(1, jn.segment_bytes);
	}
	snprintf(path, sizeof(path), "%s/seg-%020" PRIu64 ".jnl", jn.dir, first);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	struct stat st;
	if(fd < 0 || fstat(fd, &st) || pread(fd, header, sizeof(header), 0) != (ssize_t)sizeof(header)
			|| memcmp(header, SEGMENT_MAGIC, 8)){
		if(fd >= 0) close(fd);
		mosquitto_log_printf(MOSQ_LOG_ERR, "clinic-journal: %s is not a journal segment", path);
		return -1;
	}
	jn.epoch = get64(header + 8);
	jn.next_seq = get64(header + 16);
	jn.size = (uint64_t)st.st_size;
	jn.offset = SEGMENT_HEADER;
	unsigned char *buf = NULL;
	while(jn.offset + RECORD_HEADER + 4 <= jn.size){
		if(pread(fd, rec, sizeof(rec), (off_t)jn.offset) != (ssize_t)sizeof(rec)) break;
		uint32_t len = get32(rec + 4);
		if(get32(rec) != RECORD_MAGIC || len < RECORD_HEADER + 4 || jn.offset + len > jn.size) break;
		unsigned char *nbuf = realloc(buf, len);
		if(!nbuf) break;
		buf = nbuf;
		if(pread(fd, buf, len, (off_t)jn.offset) != (ssize_t)len) break;
		size_t body = RECORD_HEADER + get16(buf + 16) + get16(buf + 18) + (size_t)get32(buf + 20);
		if(body + 4 > len || crc32_ieee(buf, body) != get32(buf + body)) break;
		jn.next_seq = get64(buf + 8) + 1;
		jn.offset += len;
	}
	free(buf);
	if(jn.offset + 4 <= jn.size){
		unsigned char probe[4] = {0};
		if(pread(fd, probe, 4, (off_t)jn.offset) == 4 && get32(probe) != 0){
			mosquitto_log_printf(MOSQ_LOG_WARNING, "clinic-journal: a torn record at the end of %s "
					"(a write cut off by a crash, never acknowledged) is discarded", path);
			jn.fresh_segment = 1;   /* leave the evidence; the next record opens a new segment */
		}
	}
	return reopen_direct(path, fd);
}

static int journal_append(const char *client, const char *topic, const void *payload, uint32_t payloadlen, uint64_t *seq)
{
	size_t clen = strlen(client), tlen = strlen(topic);
	if(clen > 0xFFFF || tlen > 0xFFFF) return -1;
	size_t body = RECORD_HEADER + clen + tlen + payloadlen;
	size_t len = (body + 4 + 7) & ~(size_t)7;
	if(jn.fresh_segment || jn.fd < 0 || jn.offset + len > jn.size){
		uint64_t size = jn.segment_bytes;
		if(SEGMENT_HEADER + len > size) size = (SEGMENT_HEADER + len + PAGE - 1) & ~(uint64_t)(PAGE - 1);
		if(segment_create(jn.next_seq, size)) return -1;
	}
	uint64_t first_page = jn.offset & ~(uint64_t)(PAGE - 1);
	size_t in_page = (size_t)(jn.offset - first_page);
	size_t span = (in_page + len + PAGE - 1) & ~(size_t)(PAGE - 1);
	if(first_page + span > jn.size) span = (size_t)(jn.size - first_page);   /* the segment's last page */
	unsigned char *pages = NULL;
	if(posix_memalign((void **)&pages, PAGE, span + PAGE)) return -1;
	memset(pages, 0, span + PAGE);
	memcpy(pages, jn.tail, in_page);
	unsigned char *buf = pages + in_page;
	put32(buf, RECORD_MAGIC);
	put32(buf + 4, (uint32_t)len);
	put64(buf + 8, jn.next_seq);
	put16(buf + 16, (uint16_t)clen);
	put16(buf + 18, (uint16_t)tlen);
	put32(buf + 20, payloadlen);
	memcpy(buf + RECORD_HEADER, client, clen);
	memcpy(buf + RECORD_HEADER + clen, topic, tlen);
	if(payloadlen) memcpy(buf + RECORD_HEADER + clen + tlen, payload, payloadlen);
	put32(buf + body, crc32_ieee(buf, body));
	/* only the units the record spans: the ones before it in the page are on disk already */
	size_t from = in_page & ~(jn.unit - 1);
	size_t upto = (in_page + len + jn.unit - 1) & ~(jn.unit - 1);
	if(upto > span) upto = span;
	int rc = write_all(jn.fd, pages + from, upto - from, (off_t)(first_page + from));
	if(rc && errno == EINVAL && jn.unit < PAGE){
		jn.unit = PAGE;   /* O_DIRECT here wants whole blocks: write the page, as it is in memory */
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "clinic-journal: %s takes direct writes of whole pages only", jn.dir);
		rc = write_all(jn.fd, pages, span, (off_t)first_page);
	}
	if(rc || fdatasync(jn.fd)){
		free(pages);
		jn.fresh_segment = 1;   /* after a failed write or sync, trust nothing of this file's cache */
		return -1;
	}
	*seq = jn.next_seq++;
	jn.offset += len;
	memcpy(jn.tail, pages + ((jn.offset & ~(uint64_t)(PAGE - 1)) - first_page), PAGE);
	free(pages);
	return 0;
}

static int on_message(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_message *ed = event_data;
	bool match = false;
	char value[64];
	uint64_t seq;
	(void)event; (void)userdata;

	if(ed->qos == 0 || mosquitto_topic_matches_sub(jn.topic, ed->topic, &match) != MOSQ_ERR_SUCCESS || !match){
		return MOSQ_ERR_SUCCESS;
	}
	const char *client = mosquitto_client_id(ed->client);
	if(journal_append(client ? client : "", ed->topic, ed->payload, ed->payloadlen, &seq)){
		mosquitto_log_printf(MOSQ_LOG_ERR, "clinic-journal: cannot store a message from %s in %s (%s); "
				"refused, the device gets no PUBACK", client ? client : "?", jn.dir, strerror(errno));
		return MOSQ_ERR_UNKNOWN;
	}
	snprintf(value, sizeof(value), "%016" PRIx64 ":%" PRIu64, jn.epoch, seq);
	if(mosquitto_property_add_string_pair(&ed->properties, MQTT_PROP_USER_PROPERTY, PROPERTY_NAME, value)){
		return MOSQ_ERR_NOMEM;
	}
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **user_data, struct mosquitto_opt *opts, int opt_count)
{
	(void)user_data;
	memset(&jn, 0, sizeof(jn));
	jn.fd = -1;
	jn.unit = SECTOR;
	if(posix_memalign((void **)&jn.tail, PAGE, PAGE)) return MOSQ_ERR_NOMEM;
	jn.segment_bytes = 1u << 20;
	snprintf(jn.topic, sizeof(jn.topic), "devices/+/readings");
	for(int i = 0; i < opt_count; i++){
		if(!strcmp(opts[i].key, "dir")) snprintf(jn.dir, sizeof(jn.dir), "%s", opts[i].value);
		else if(!strcmp(opts[i].key, "topic")) snprintf(jn.topic, sizeof(jn.topic), "%s", opts[i].value);
		else if(!strcmp(opts[i].key, "segment_bytes")) jn.segment_bytes = strtoull(opts[i].value, NULL, 10);
	}
	jn.segment_bytes = (jn.segment_bytes + PAGE - 1) & ~(uint64_t)(PAGE - 1);
	if(!jn.dir[0] || jn.segment_bytes < 4 * PAGE){
		mosquitto_log_printf(MOSQ_LOG_ERR, "clinic-journal: plugin_opt_dir is required (and segment_bytes >= 4096)");
		return MOSQ_ERR_INVAL;
	}
	crc_init();
	mkdir(jn.dir, 0700);
	if(journal_open()){
		mosquitto_log_printf(MOSQ_LOG_ERR, "clinic-journal: cannot open the journal in %s: %s", jn.dir, strerror(errno));
		return MOSQ_ERR_UNKNOWN;
	}
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "clinic-journal: %s, epoch %016" PRIx64 ", next record %" PRIu64,
			jn.dir, jn.epoch, jn.next_seq);
	plugin_id = identifier;
	return mosquitto_callback_register(plugin_id, MOSQ_EVT_MESSAGE, on_message, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *user_data, struct mosquitto_opt *opts, int opt_count)
{
	(void)user_data; (void)opts; (void)opt_count;
	if(jn.fd >= 0){
		close(jn.fd);
		jn.fd = -1;
	}
	free(jn.tail);
	jn.tail = NULL;
	return mosquitto_callback_unregister(plugin_id, MOSQ_EVT_MESSAGE, on_message, NULL);
}
