/* The reference engine for the differential test: ModSecurity v3 (libmodsecurity) deciding
 * on requests read from stdin, one decision per request on stdout.
 *
 *   decide <rules.conf>   < requests
 *
 * Requests:  "REQ <method> <uri>\n", then "H <name>: <value>\n" lines, then optionally
 * "B <body as hex>\n", then "END\n".
 * Decisions: "<status> <ids>\n": the intervention's status (0: passed) and the ids of the
 * rules that logged a match (the disruptive one last), comma-separated ("-" for none). */
#include <modsecurity/modsecurity.h>
#include <modsecurity/rules_set.h>
#include <modsecurity/transaction.h>
#include <modsecurity/intervention.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char ids[8192];

static void on_log(void *data, const void *msg) {
    (void)data;
    const char *text = msg;
    const char *at = strstr(text, "[id \"");
    if (!at) return;
    at += 5;
    const char *end = strchr(at, '"');
    if (!end || end == at) return;
    size_t len = strlen(ids);
    if (len + (size_t)(end - at) + 2 >= sizeof ids) return;
    if (len) ids[len++] = ',';
    memcpy(ids + len, at, (size_t)(end - at));
    ids[len + (size_t)(end - at)] = 0;
}

static int unhex(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int interrupted(Transaction *t) {
    ModSecurityIntervention it = {200, 0, NULL, NULL, 0};
    int stop = msc_intervention(t, &it) && it.disruptive;
    /* The rule that disrupted reports itself here, not through the log callback. */
    if (stop && it.log) on_log(NULL, it.log);
    free(it.url);
    free(it.log);
    return stop ? it.status : 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: decide <rules.conf> < requests\n");
        return 2;
    }
    ModSecurity *ms = msc_init();
    msc_set_connector_info(ms, "weir-differential");
    msc_set_log_cb(ms, on_log);
    RulesSet *rules = msc_create_rules_set();
    const char *error = NULL;
    if (msc_rules_add_file(rules, argv[1], &error) < 0) {
        fprintf(stderr, "%s: %s\n", argv[1], error ? error : "cannot load");
        return 1;
    }
    static char line[1 << 20];
    static unsigned char body[1 << 19];
    Transaction *t = NULL;
    size_t body_len = 0;
    int status = 0;
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        if (!strncmp(line, "REQ ", 4)) {
            char *method = line + 4, *uri = strchr(method, ' ');
            if (!uri) return 3;
            *uri++ = 0;
            ids[0] = 0;
            status = 0;
            body_len = 0;
            t = msc_new_transaction(ms, rules, NULL);
            msc_process_connection(t, "192.0.2.10", 40000, "127.0.0.1", 80);
            msc_process_uri(t, uri, method, "1.1");
        } else if (!strncmp(line, "H ", 2) && t) {
            char *name = line + 2, *value = strstr(name, ": ");
            if (!value) return 3;
            *value = 0;
            value += 2;
            msc_add_request_header(t, (unsigned char *)name, (unsigned char *)value);
        } else if (!strncmp(line, "B ", 2) && t) {
            for (char *p = line + 2; p[0] && p[1] && body_len < sizeof body; p += 2)
                body[body_len++] = (unsigned char)(unhex(p[0]) * 16 + unhex(p[1]));
        } else if (!strcmp(line, "END") && t) {
            msc_process_request_headers(t);
            status = interrupted(t);
            if (!status) {
                if (body_len) msc_append_request_body(t, body, body_len);
                msc_process_request_body(t);
                status = interrupted(t);
            }
            msc_process_logging(t);
            printf("%d %s\n", status, ids[0] ? ids : "-");
            fflush(stdout);
            msc_transaction_cleanup(t);
            t = NULL;
        }
    }
    msc_rules_cleanup(rules);
    msc_cleanup(ms);
    return 0;
}
