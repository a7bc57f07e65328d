/* The reference for the libinjection differential test: the C libinjection that
 * libmodsecurity3 carries (and exports), run on inputs from stdin.
 *
 *   detect < inputs      one input per line, as hex
 *   output, per input:   "<sqli 0|1> <fingerprint or -> <xss 0|1>" */
#include <stdio.h>
#include <string.h>

int libinjection_sqli(const char *s, size_t slen, char fingerprint[]);
int libinjection_xss(const char *s, size_t slen);
const char *libinjection_version(void);

static int unhex(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 0;
}

int main(void) {
    static char line[1 << 16], buf[1 << 15];
    while (fgets(line, sizeof line, stdin)) {
        size_t n = 0;
        for (char *p = line; p[0] && p[0] != '\n' && p[1] && n < sizeof buf; p += 2)
            buf[n++] = (char)(unhex(p[0]) * 16 + unhex(p[1]));
        char fp[8] = {0};
        int sqli = libinjection_sqli(buf, n, fp);
        int xss = libinjection_xss(buf, n);
        printf("%d %s %d\n", sqli, sqli && fp[0] ? fp : "-", xss);
    }
    return 0;
}
